"""What the people's CLI reads of a Task (pure).

A read model of its own rather than :class:`taskflow.api.Task`: the CLI must read Tasks
written by an operator older or newer than itself, so every field is optional, unknown
fields are ignored, and no spec validation (step limits, DNS labels) can refuse a Task the
API server accepted. It also reads the fields of features landing in parallel (retries:
``status.attempt``/``status.attempts``; agent results: ``status.steps[].results``; step
retries: ``status.steps[].attempts``/``retriedExitCodes``; ``status.sidecars``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from taskflow.api import task_status
from taskflow.status import format_duration, parse_time

CANCELLED: Final = task_status.CANCELLED
FINAL: Final = task_status.FINISHED
STARTED: Final = frozenset({task_status.STEP_RUNNING, task_status.STEP_TERMINATED})


class Result(msgspec.Struct, kw_only=True):
    name: str
    value: str = ""


class StepView(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    name: str
    state: str = task_status.STEP_WAITING
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    results: list[Result] = []
    attempts: int | None = None
    retried_exit_codes: list[int] = []


class SidecarView(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    name: str
    state: str = task_status.STEP_WAITING
    ready: bool = False
    restarts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None


class ConditionView(msgspec.Struct, rename="camel", kw_only=True):
    type: str
    status: str = "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class AttemptRecord(msgspec.Struct, rename="camel", kw_only=True):
    """An earlier attempt of a retried Task (``status.attempts[]``)."""

    attempt: int = 0
    pod_name: str | None = None
    reason: str | None = None
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    steps: list[StepView] = []


class StatusView(msgspec.Struct, rename="camel", kw_only=True):
    status: str | None = None
    start_at: str | None = None
    duration: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    pod_name: str | None = None
    progress: str | None = None
    steps: list[StepView] = []
    sidecars: list[SidecarView] = []
    conditions: list[ConditionView] = []
    attempt: int | None = None
    attempts: list[AttemptRecord] = []

    def condition(self) -> ConditionView | None:
        return next((c for c in self.conditions if c.type == task_status.CONDITION_SUCCEEDED), None)


class MetaView(msgspec.Struct, rename="camel", kw_only=True):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    creation_timestamp: str | None = None
    resource_version: str | None = None


class StepSpec(msgspec.Struct, kw_only=True):
    name: str
    retries: int = 0


class SidecarSpec(msgspec.Struct, kw_only=True):
    name: str


class SpecView(msgspec.Struct, kw_only=True):
    steps: list[StepSpec] = []
    sidecars: list[SidecarSpec] = []
    cancel: bool = False


class TaskView(msgspec.Struct, kw_only=True):
    metadata: MetaView = msgspec.field(default_factory=MetaView)
    spec: SpecView = msgspec.field(default_factory=SpecView)
    status: StatusView = msgspec.field(default_factory=StatusView)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def word(self) -> str:
        """The status word; a Task nobody has reported on yet is Pending."""
        return self.status.status or task_status.PENDING

    @property
    def final(self) -> bool:
        return self.word in FINAL

    @property
    def current_attempt(self) -> int:
        return self.status.attempt or 1

    def step_names(self) -> list[str]:
        return [s.name for s in self.spec.steps]

    def sidecar_names(self) -> list[str]:
        """In spec order; the status's when the spec has none readable."""
        return [s.name for s in self.spec.sidecars or self.status.sidecars]

    def sidecars(self) -> list[SidecarView]:
        """Every sidecar in spec order, as last reported (Waiting when not yet)."""
        reported = {s.name: s for s in self.status.sidecars}
        if not self.spec.sidecars:
            return list(self.status.sidecars)
        return [reported.get(s.name, SidecarView(name=s.name)) for s in self.spec.sidecars]

    def step_tries(self, name: str) -> int | None:
        """How many times step ``name`` may run (1 + its retries); None when the spec does
        not name it."""
        spec = next((s for s in self.spec.steps if s.name == name), None)
        return None if spec is None else spec.retries + 1


def decode_task(obj: Any) -> TaskView:
    """The read model of a Task's JSON form; ValueError when it does not fit at all."""
    if isinstance(obj, dict) and obj.get("status") is None:
        obj = {**obj, "status": {}}
    try:
        return msgspec.convert(obj, TaskView)
    except msgspec.ValidationError as exc:
        raise ValueError(f"cannot read the Task: {exc}") from None


@dataclass(frozen=True)
class Attempt:
    """One attempt of a Task as the log follower sees it: its pod and its steps in spec order
    (a step the status does not list yet is Waiting)."""

    number: int
    pod: str | None
    steps: tuple[StepView, ...]
    final: bool
    word: str
    reason: str | None = None
    message: str | None = None
    duration: str | None = None


def _merge(names: list[str], reported: list[StepView]) -> tuple[StepView, ...]:
    by_name = {s.name: s for s in reported}
    if not names:  # a Task without a readable spec: trust the status
        return tuple(reported)
    return tuple(by_name.get(n, StepView(name=n)) for n in names)


def attempt_of(task: TaskView, number: int) -> Attempt | None:
    """Attempt ``number`` of ``task`` (1 = the first), None if it has not happened (yet)."""
    st = task.status
    current = task.current_attempt
    names = task.step_names()
    if number == current:
        cond = st.condition()
        return Attempt(
            number=number,
            pod=st.pod_name,
            steps=_merge(names, st.steps),
            final=task.final,
            word=task.word,
            reason=cond.reason if cond else None,
            message=cond.message if cond else None,
            duration=st.duration,
        )
    if number < 1 or number > current:
        return None
    record = next((a for a in st.attempts if a.attempt == number), None)
    if record is None and 0 < number <= len(st.attempts):
        record = st.attempts[number - 1]  # an operator that leaves `attempt` out
    if record is None:
        return None
    return Attempt(
        number=number,
        pod=record.pod_name,
        steps=_merge(names, record.steps),
        final=True,  # an earlier attempt ended, or there would be no later one
        word=task_status.FAILURE,
        reason=record.reason,
        message=record.message,
        duration=span(record.start_time, record.completion_time),
    )


def span(start: str | None, end: str | None) -> str | None:
    """``1m5s`` between two RFC 3339 timestamps; None when either is missing or unreadable."""
    if not start or not end:
        return None
    try:
        return format_duration((parse_time(end) - parse_time(start)).total_seconds())
    except ValueError:
        return None
