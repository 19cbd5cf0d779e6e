"""The Task API: msgspec structs, the Pod read model, CRD generation and decoders."""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from taskflow.api._fields import K8sType
from taskflow.api.meta import ObjectMeta, OwnerReference
from taskflow.api.pod import Pod
from taskflow.api.task import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    PodTemplate,
    Sidecar,
    Step,
    Task,
    TaskSpec,
)
from taskflow.api.task_status import AttemptStatus, Condition, SidecarStatus, StepStatus, TaskStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "AttemptStatus",
    "Condition",
    "DecodeError",
    "K8sType",
    "ObjectMeta",
    "OwnerReference",
    "Pod",
    "PodTemplate",
    "Sidecar",
    "SidecarStatus",
    "Step",
    "StepStatus",
    "Task",
    "TaskSpec",
    "TaskStatus",
    "decode_pod",
    "decode_task",
    "decode_task_status",
    "load_task_yaml",
    "to_dict",
]


class DecodeError(ValueError):
    """An object does not fit the API; the message says where (``$.spec.steps[0].image``)."""


def decode_task(obj: Any) -> Task:
    """A Task from its JSON-like form (a dict from the API server or YAML)."""
    try:
        return msgspec.convert(obj, Task)
    except msgspec.ValidationError as e:
        raise DecodeError(str(e)) from None


def decode_pod(obj: Any) -> Pod:
    """The Pod read model from a core/v1 Pod's JSON-like form."""
    try:
        return msgspec.convert(obj, Pod)
    except msgspec.ValidationError as e:
        raise DecodeError(str(e)) from None


def decode_task_status(obj: Any) -> TaskStatus | None:
    """A Task's status, or None when absent or not decodable."""
    if not obj:
        return None
    try:
        return msgspec.convert(obj, TaskStatus)
    except msgspec.ValidationError:
        return None


def load_task_yaml(text: str | bytes) -> Task:
    """The Task in a YAML (or JSON) document; the first Task when there are several."""
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    tasks = [d for d in docs if isinstance(d, dict) and d.get("kind", KIND) == KIND]
    if not tasks:
        raise DecodeError("no Task in the document")
    return decode_task(tasks[0])


def to_dict(obj: msgspec.Struct) -> dict[str, Any]:
    """The JSON-like form of an API struct (camelCase keys, defaults omitted).

    A Task keeps ``apiVersion`` and ``kind`` although they are defaults.
    """
    out: dict[str, Any] = msgspec.to_builtins(obj)
    if isinstance(obj, Task):
        out = {"apiVersion": obj.api_version, "kind": obj.kind, **out}
    return out
