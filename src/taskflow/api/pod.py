"""Read model of core/v1 Pod: only what :mod:`taskflow.status` needs."""

# gc=False: plain data, never in a reference cycle (see taskflow.api.meta).

from __future__ import annotations

from datetime import datetime

import msgspec

from taskflow.api.meta import ObjectMeta


class ContainerStateWaiting(
    msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False
):
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(
    msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False
):
    started_at: datetime | None = None


class ContainerStateTerminated(
    msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False
):
    exit_code: int = 0
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    container_id: str | None = None


class ContainerState(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    name: str
    state: ContainerState = msgspec.field(default_factory=ContainerState)
    last_state: ContainerState = msgspec.field(default_factory=ContainerState)
    ready: bool = False
    restart_count: int = 0
    image: str | None = None
    image_id: str | None = None
    container_id: str | None = None
    started: bool | None = None


class PodCondition(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


class PodStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    start_time: datetime | None = None
    conditions: list[PodCondition] = []
    init_container_statuses: list[ContainerStatus] = []
    container_statuses: list[ContainerStatus] = []

    def condition(self, type_: str) -> PodCondition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None


class Container(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    name: str
    image: str | None = None


class PodSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    init_containers: list[Container] = []
    containers: list[Container] = []
    #: they count against the termination-message budget (:mod:`taskflow.api.budget`)
    ephemeral_containers: list[Container] = []
    restart_policy: str | None = None
    active_deadline_seconds: int | None = None
    node_name: str | None = None


class Pod(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    api_version: str = "v1"
    kind: str = "Pod"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)
