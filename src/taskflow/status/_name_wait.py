"""A Task whose pod's name is held by a pod that is not its own (a 409 on create).

It waits: ``Pending`` with reason ``WaitingForOldPod`` (the pod is going away: being
deleted, or its Task is gone and the garbage collector deletes it) or ``PodNameTaken``
(anyone else's pod), naming the pod, its owner and what the user can do. It tries again
with a backoff that doubles with the time waited (1 s, 1 s, 2 s, 4 s, ... capped at
:data:`BACKOFF_CAP`), counted from the condition's ``lastTransitionTime`` (when the wait
began), so it needs no memory in the operator and survives restarts. It gives up at the
Task's timeout, or :data:`NAME_WAIT_CAP` after its creation when it has none: ``Failure``
with the same reason, since the name, not a step, kept it from running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from taskflow.api.pod import Pod
from taskflow.api.task import KIND, Task
from taskflow.api.task_status import TaskStatus
from taskflow.labels import TASK_UID_LABEL
from taskflow.settings import Settings
from taskflow.status._clock import format_duration, format_time, parse_time, utc
from taskflow.status._compute import Evaluation, invalid_status, pending_without_pod
from taskflow.status._reasons import NAME_WAIT_REASONS, POD_NAME_TAKEN, WAITING_FOR_OLD_POD
from taskflow.status._stop import deadline_of, timeout_of

#: Longest pause between two create attempts while the name is taken.
BACKOFF_CAP: Final = 30.0
#: Shortest pause (the first retries).
BACKOFF_MIN: Final = 1.0
#: How long a Task without a timeout waits for its pod's name (from its creation).
NAME_WAIT_CAP: Final = 3600.0


def _bound(task: Task, settings: Settings) -> tuple[datetime, str] | None:
    """When the wait ends, and how to say so."""
    deadline = deadline_of(task, settings)
    if deadline is not None:
        source = "spec.timeout" if task.spec.timeout is not None else "the default timeout"
        took = format_duration(timeout_of(task, settings) or 0.0)
        return deadline, f"at the Task's timeout ({took}, {source})"
    created = task.metadata.creation_timestamp
    if created is None:
        return None
    cap = format_duration(NAME_WAIT_CAP)
    return utc(created) + timedelta(seconds=NAME_WAIT_CAP), f"after {cap} (a Task without timeout)"


def _whose(pod: Pod) -> str:
    tasks = [r for r in pod.metadata.owner_references if r.kind == KIND]
    if tasks:
        return ", ".join(f'of Task "{r.name}" uid {r.uid}' for r in tasks)
    if label := pod.metadata.labels.get(TASK_UID_LABEL):
        return f"labelled {TASK_UID_LABEL}={label}"
    if pod.metadata.owner_references:
        return ", ".join(f'owned by {r.kind} "{r.name}"' for r in pod.metadata.owner_references)
    return "not created by taskflow"


def _fact(pod: Pod, going_away: bool) -> str:
    name = pod.metadata.name
    if going_away:
        return f'waiting for the old pod "{name}" ({_whose(pod)}) to be deleted'
    return f'pod "{name}" already exists and is not this Task\'s ({_whose(pod)})'


def _pending_tail(reason: str, bound: tuple[datetime, str] | None) -> str:
    if reason == WAITING_FOR_OLD_POD:
        tail = "if it stays (a finalizer, a lost node), remove its finalizers or force-delete it"
    else:
        tail = "delete that pod to let this Task run, or re-create the Task under another name"
    return tail + (f"; the Task gives up at {format_time(bound[0])}" if bound else "")


def _final(task: Task, reason: str, fact: str, bound: str, now: datetime) -> TaskStatus:
    message = (
        f"{fact}; gave up {bound}: re-create the Task under another name, or once that pod is gone"
    )
    return invalid_status(task, reason, message, now=now)


def name_wait_status(
    task: Task, pod: Pod, *, going_away: bool, now: datetime, settings: Settings
) -> Evaluation:
    """The status of a Task whose pod's name ``pod`` holds, and when to try again."""
    now = utc(now)
    reason = WAITING_FOR_OLD_POD if going_away else POD_NAME_TAKEN
    fact = _fact(pod, going_away)
    bound = _bound(task, settings)
    if bound is not None and now >= bound[0]:
        return Evaluation(status=_final(task, reason, fact, bound[1], now))
    old = task.status
    prev = old.condition() if old is not None else None
    waiting_since = (
        parse_time(prev.last_transition_time)
        if prev is not None and prev.reason == reason and prev.last_transition_time
        else now
    )
    status = pending_without_pod(
        task, reason, f"{fact}; {_pending_tail(reason, bound)}", now=now, since=waiting_since
    )
    # the pause doubles the time waited so far: few requests for a long wait, and a name
    # that frees soon is taken soon
    delay = min(BACKOFF_CAP, max(BACKOFF_MIN, (now - waiting_since).total_seconds()))
    if bound is not None:
        delay = min(delay, (bound[0] - now).total_seconds())
    return Evaluation(status=status, requeue_after=delay)


def gave_up_waiting(task: Task, *, now: datetime, settings: Settings) -> TaskStatus | None:
    """The final status of a Task that waited for its pod's name until its bound (None if it
    was not waiting, or still may). Used where no create is tried any more (the Task's
    timeout): the pod is then unknown, so the fact comes from the waiting message."""
    old = task.status
    prev = old.condition() if old is not None else None
    if old is None or old.pod_name or prev is None or prev.reason not in NAME_WAIT_REASONS:
        return None
    bound = _bound(task, settings)
    if bound is None or utc(now) < bound[0]:
        return None
    fact = (prev.message or "").removesuffix(f"; {_pending_tail(prev.reason, bound)}")
    return _final(task, prev.reason, fact, bound[1], utc(now))
