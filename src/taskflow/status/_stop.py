"""Whether a Task must stop before its steps are done: a cancel, or its timeout."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from taskflow.api.duration import parse_duration
from taskflow.api.pod import Pod
from taskflow.api.task import Task
from taskflow.api.task_status import CANCELLED, FAILURE, TaskStatus
from taskflow.settings import Settings
from taskflow.status._clock import format_duration, utc
from taskflow.status._reasons import REASON_CANCELLED, TIMED_OUT


class Stop(msgspec.Struct, frozen=True, kw_only=True):
    """Why a Task stops early, and how it ends once its pod has stopped."""

    status: str  # Cancelled or Failure
    reason: str  # Cancelled or TimedOut
    why: str  # "cancelled (spec.cancel)", "timed out: ..."


def timeout_of(task: Task, settings: Settings) -> float | None:
    """The Task's timeout in seconds (spec.timeout, else the default; None = no limit)."""
    if task.spec.timeout is not None:
        try:
            return parse_duration(task.spec.timeout)
        except ValueError:  # the CRD rejects it; a Task stored before the schema: no limit
            return None
    return settings.default_timeout or None


def deadline_of(task: Task, settings: Settings) -> datetime | None:
    timeout = timeout_of(task, settings)
    created = task.metadata.creation_timestamp
    if timeout is None or created is None:
        return None
    return utc(created) + timedelta(seconds=timeout)


def stop_of(task: Task, now: datetime, settings: Settings) -> Stop | None:
    """A cancel wins over a timeout (the user asked first, or at least explicitly)."""
    if task.spec.cancel:
        return Stop(status=CANCELLED, reason=REASON_CANCELLED, why="cancelled (spec.cancel)")
    deadline = deadline_of(task, settings)
    if deadline is not None and now >= deadline:
        timeout = timeout_of(task, settings) or 0.0
        source = "spec.timeout" if task.spec.timeout is not None else "the default timeout"
        return Stop(
            status=FAILURE,
            reason=TIMED_OUT,
            why=f"timed out: the Task did not finish within {format_duration(timeout)} ({source})",
        )
    return None


def pod_stopped(pod: Pod) -> bool:
    """The pod runs nothing any more, or never will: terminal, being deleted, or never
    placed on a node (an unscheduled pod has no kubelet to stop it; it was told never to
    run, see :func:`needs_stop`)."""
    return (
        pod.status.phase in ("Succeeded", "Failed")
        or pod.metadata.deletion_timestamp is not None
        or not pod.spec.node_name
    )


#: The pod's activeDeadlineSeconds that stops it: the API server lets a running pod's
#: deadline be lowered (never raised), and the kubelet then stops every container with the
#: pod's grace period (SIGTERM, SIGKILL after it) and starts no further one, keeping the pod
#: and its logs. Works for both executors and needs only `pods patch`.
STOP_DEADLINE = 1


def needs_stop(pod: Pod) -> bool:
    """Whether the pod must still be told to stop."""
    return (
        pod.status.phase not in ("Succeeded", "Failed")
        and pod.metadata.deletion_timestamp is None
        and pod.spec.active_deadline_seconds != STOP_DEADLINE
    )


def current_attempt(status: TaskStatus | None) -> int:
    """Which attempt the Task is on (1 = the first run)."""
    return status.attempt if status is not None and status.attempt else 1
