"""Decide what to do for one Task (pure): the :class:`Plan` the engine's writer applies.

Order of application for the engine: ``create_pod`` first (409 -> adopt if the existing pod
carries our task-UID label); only when the pod exists write ``status`` (merge-patch on
``/status``, it already names the pod); then ``events``. If the create is rejected (422/400)
apply :func:`rejected` instead; if it is refused for now (403) apply :func:`create_refused`
and retry with backoff; on any other error retry later without writing status.

Events are emitted only for transitions between the old and the new status, so a reconcile
that changes nothing says nothing; their messages are deterministic for a given transition
(the engine may name events after them to deduplicate).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from taskflow.api import decode_task_status
from taskflow.api.pod import Pod
from taskflow.api.task import (
    FAILURE,
    STEP_RUNNING,
    STEP_TERMINATED,
    SUCCESSFUL,
    StepStatus,
    Task,
    TaskStatus,
)
from taskflow.render import RenderError, pod_name, render_pod
from taskflow.settings import Settings
from taskflow.status import (
    INVALID_POD_SPEC,
    INVALID_SPEC,
    PROBLEM_REASONS,
    evaluate,
    invalid_status,
    refused_status,
)

MAX_EVENT_MESSAGE: Final = 1024

# event reasons
POD_CREATED: Final = "PodCreated"
STEP_STARTED: Final = "StepStarted"
STEP_SUCCEEDED: Final = "StepSucceeded"
STEP_FAILED_EVENT: Final = "StepFailed"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"


class EventSpec(msgspec.Struct, frozen=True):
    type: Literal["Normal", "Warning"]
    reason: str  # CamelCase, e.g. "PodCreated", "StepFailed"
    message: str


class Plan(msgspec.Struct, frozen=True):
    create_pod: dict[str, Any] | None = None  # manifest to POST (409 -> adopt if ours)
    status: TaskStatus | None = None  # full new status; None = unchanged, do not patch
    events: tuple[EventSpec, ...] = ()
    requeue_after: float | None = None  # seconds; re-evaluate even without a watch event


def _event(type_: Literal["Normal", "Warning"], reason: str, message: str) -> EventSpec:
    if len(message) > MAX_EVENT_MESSAGE:
        message = message[: MAX_EVENT_MESSAGE - 3] + "..."
    return EventSpec(type=type_, reason=reason, message=message)


def plan(task: Task, pod: Pod | None, *, now: datetime, settings: Settings) -> Plan:
    """What to do for ``task`` given its pod (from the cache; None when absent)."""
    old = task.status
    if old is not None and old.finished:
        return Plan()
    create: dict[str, Any] | None = None
    if pod is None and not (old is not None and old.pod_name):
        try:
            create = render_pod(task, settings)
        except RenderError as e:
            status = invalid_status(task, INVALID_SPEC, f"the Task cannot run: {e}", now=now)
            return _finish(old, status, ())
    ev = evaluate(task, pod, now=now, settings=settings)
    events: list[EventSpec] = []
    if create is not None:
        events.append(_event("Normal", POD_CREATED, f"Created pod {pod_name(task.metadata.name)}"))
    events += transition_events(task, old, ev.status)
    return Plan(
        create_pod=create,
        status=None if ev.status == old else ev.status,
        events=tuple(events),
        requeue_after=ev.requeue_after,
    )


def _finish(old: TaskStatus | None, status: TaskStatus, events: tuple[EventSpec, ...]) -> Plan:
    cond = status.condition()
    final = _event("Warning", FAILED, f"{cond.reason}: {cond.message}") if cond else None
    return Plan(status=status, events=events + ((final,) if final else ()))


def rejected(task: Task, message: str, *, now: datetime) -> Plan:
    """The API server rejected the pod at create (422/400): ``Failure/InvalidPodSpec``."""
    if task.status is not None and task.status.finished:
        return Plan()
    status = invalid_status(
        task, INVALID_POD_SPEC, f"the API server rejected the pod: {message.strip()}", now=now
    )
    return _finish(task.status, status, ())


def create_refused(task: Task, message: str, *, now: datetime) -> Plan:
    """The API server refused the pod for now (403): stay ``Pending`` with reason
    ``FailedCreate`` and the server's message (a Warning event the first time); the engine
    retries with backoff, as the Job controller does."""
    old = task.status
    if old is not None and old.finished:
        return Plan()
    status = refused_status(task, message.strip(), now=now)
    return Plan(
        status=None if status == old else status,
        events=tuple(transition_events(task, old, status)),
    )


def undecodable(raw_status: Any, message: str, *, now: datetime) -> Plan:
    """A Task that cannot be decoded into :class:`Task`: ``Failure/InvalidSpec``.

    ``raw_status`` is the object's ``status`` as stored (any JSON value, or None).
    """
    old = decode_task_status(raw_status) if isinstance(raw_status, dict) else None
    if old is not None and old.finished:
        return Plan()
    status = invalid_status(
        None, INVALID_SPEC, f"the Task cannot be read: {message.strip()}", now=now, old=old
    )
    if status == old:
        return Plan()
    return _finish(old, status, ())


def _started(s: StepStatus | None) -> bool:
    return s is not None and s.state in (STEP_RUNNING, STEP_TERMINATED)


def transition_events(task: Task, old: TaskStatus | None, new: TaskStatus) -> list[EventSpec]:
    """Events telling what changed from ``old`` to ``new`` (nothing when nothing did)."""
    out: list[EventSpec] = []
    before = {s.name: s for s in old.steps} if old is not None else {}
    n = len(new.steps)
    for i, s in enumerate(new.steps):
        prev = before.get(s.name)
        label = f"step {s.name} ({i + 1}/{n})"
        if _started(s) and not _started(prev) and s.started_at:
            out.append(_event("Normal", STEP_STARTED, f"Started {label}"))
        was_done = prev is not None and prev.state == STEP_TERMINATED
        if s.state == STEP_TERMINATED and not was_done and s.exit_code is not None:
            if s.exit_code == 0:
                out.append(_event("Normal", STEP_SUCCEEDED, f"{label} succeeded"))
            else:
                detail = f" ({s.reason})" if s.reason and s.reason != "Error" else ""
                out.append(
                    _event(
                        "Warning",
                        STEP_FAILED_EVENT,
                        f"{label} failed with exit code {s.exit_code}{detail}",
                    )
                )
    new_cond = new.condition()
    old_cond = old.condition() if old is not None else None
    if new.status == SUCCESSFUL and (old is None or old.status != SUCCESSFUL):
        took = f" in {new.duration}" if new.duration else ""
        out.append(_event("Normal", SUCCEEDED, f"All {n} steps succeeded{took}"))
    elif new.status == FAILURE and (old is None or old.status != FAILURE):
        if new_cond is not None:
            out.append(_event("Warning", FAILED, f"{new_cond.reason}: {new_cond.message}"))
    elif (
        new_cond is not None
        and new_cond.reason in PROBLEM_REASONS
        and (old_cond is None or old_cond.reason != new_cond.reason)
    ):
        out.append(_event("Warning", new_cond.reason or "", new_cond.message or ""))
    return out
