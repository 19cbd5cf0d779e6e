"""Kubernetes object metadata (the subset taskflow reads and writes)."""

# gc=False on every model here: decoded API objects hold only strings, numbers, times and
# lists/dicts of those, never a reference cycle, so the cycle collector need not track
# or traverse them (less memory and shorter collections with a big cache).

from __future__ import annotations

from datetime import datetime

import msgspec


class OwnerReference(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    uid: str = ""
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerReference] = []
    finalizers: list[str] = []
