"""Task + Pod -> TaskStatus: read the step table, ask what the pod's state means, and write
the status (times, progress, the ``Succeeded`` condition)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from taskflow.api.executor import agent_problem
from taskflow.api.pod import Pod
from taskflow.api.task import Task
from taskflow.api.task_status import (
    CANCELLED,
    CONDITION_SUCCEEDED,
    FAILURE,
    FINISHED,
    PENDING,
    RUNNING,
    STEP_NOT_RUN,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    SUCCESSFUL,
    Condition,
    SidecarStatus,
    StepStatus,
    TaskStatus,
)
from taskflow.api.validate import spec_problem
from taskflow.naming import pod_name
from taskflow.settings import Settings
from taskflow.status._clock import format_duration, format_start_at, format_time, parse_time, utc
from taskflow.status._outcome import outcome
from taskflow.status._reasons import (
    INVALID_SPEC,
    POD_DELETED,
    REASON_FAILED_CREATE,
    REASON_PENDING,
)
from taskflow.status._sidecars import sidecar_statuses
from taskflow.status._steps import is_failed, progress, start_of, step_statuses
from taskflow.status._stop import Stop, current_attempt, deadline_of, stop_of

MAX_CONDITION_MESSAGE: Final = 1024


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """The new status and when to look again if nothing else happens."""

    status: TaskStatus
    #: seconds until a pending timeout (image pull / config error) would fire
    requeue_after: float | None = None


def _truncate(text: str, limit: int = MAX_CONDITION_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compute_status(task: Task, pod: Pod | None, *, now: datetime, settings: Settings) -> TaskStatus:
    """The Task's status given its pod (None when there is none)."""
    return evaluate(task, pod, now=now, settings=settings).status


def evaluate(task: Task, pod: Pod | None, *, now: datetime, settings: Settings) -> Evaluation:
    """:func:`compute_status` plus the time after which to evaluate again.

    ``pod`` is the pod of the Task's current attempt; the status describes that attempt and
    carries the earlier ones (``attempts``) along unchanged.
    """
    old = task.status
    if old is not None and old.finished:
        return Evaluation(status=old)
    now = utc(now)
    problem = spec_problem(task) or agent_problem(task, settings.default_executor)
    if problem is not None:
        ev = Evaluation(status=invalid_status(task, INVALID_SPEC, problem, now=now))
    elif pod is None and (stop := stop_of(task, now, settings)) is not None:
        ev = Evaluation(status=_stopped_without_pod(task, old, stop, now))
    elif pod is None and old is not None and old.pod_name:
        ev = Evaluation(status=_pod_gone(task, old, now))
    elif pod is None:
        ev = Evaluation(status=_not_created(task, old, now))
    else:
        ev = _with_pod(task, pod, now, settings)
    status = _carry(old, ev.status)
    requeue = ev.requeue_after
    deadline = deadline_of(task, settings)
    if not status.finished and deadline is not None and deadline > now:
        # look again when the timeout fires, even if nothing else happens by then
        until = (deadline - now).total_seconds()
        requeue = until if requeue is None else min(requeue, until)
    return Evaluation(status=status, requeue_after=requeue)


def _carry(old: TaskStatus | None, status: TaskStatus) -> TaskStatus:
    """``status`` of the current attempt, with the attempt's number and the earlier ones."""
    attempt = current_attempt(old)
    # (an attempt whose pod is being stopped before the next has its record already)
    earlier = [a for a in old.attempts if a.attempt < attempt] if old is not None else []
    return msgspec.structs.replace(status, attempt=attempt, attempts=earlier)


def _condition(
    old: TaskStatus | None, status: str, reason: str, message: str, now: datetime
) -> Condition:
    prev = old.condition(CONDITION_SUCCEEDED) if old is not None else None
    if prev is not None and prev.status == status and prev.last_transition_time:
        ltt = prev.last_transition_time
    else:
        ltt = format_time(now)
    return Condition(
        type=CONDITION_SUCCEEDED,
        status=status,
        reason=reason,
        message=_truncate(message),
        last_transition_time=ltt,
    )


def _cond_status(word: str) -> str:
    return {SUCCESSFUL: "True", FAILURE: "False", CANCELLED: "False"}.get(word, "Unknown")


def _not_created(task: Task, old: TaskStatus | None, now: datetime) -> TaskStatus:
    name = pod_name(task.metadata.name, current_attempt(old))
    steps = [StepStatus(name=s.name, state=STEP_WAITING) for s in task.spec.steps]
    return TaskStatus(
        status=PENDING,
        pod_name=name,
        progress=progress(steps),
        steps=steps,
        conditions=[
            _condition(old, "Unknown", REASON_PENDING, f"creating pod {name}", now),
        ],
        observed_generation=task.metadata.generation,
    )


def refused_status(task: Task, message: str, *, now: datetime) -> TaskStatus:
    """Still ``Pending``: the API server refused to create the pod for now (403: a quota,
    an admission policy, missing permissions); the engine retries with backoff."""
    return pending_without_pod(
        task, REASON_FAILED_CREATE, f"cannot create the pod: {message}", now=now
    )


def pending_without_pod(
    task: Task, reason: str, message: str, *, now: datetime, since: datetime | None = None
) -> TaskStatus:
    """``Pending`` with ``reason``: the pod could not be created yet. No ``podName``: there
    is no pod, and a named pod that is absent would mean ``PodDeleted``. ``since`` sets the
    condition's ``lastTransitionTime`` (by default it moves only with the condition's
    status)."""
    old = task.status
    cond = _condition(old, "Unknown", reason, message, now)
    if since is not None:
        cond = msgspec.structs.replace(cond, last_transition_time=format_time(since))
    return msgspec.structs.replace(
        _carry(old, _not_created(task, old, now)), pod_name=None, conditions=[cond]
    )


def _finalize(steps: list[StepStatus], reason: str) -> list[StepStatus]:
    """Steps of a finished Task: nothing is Waiting or Running any more."""
    out = []
    for s in steps:
        if s.state == STEP_WAITING:
            s = msgspec.structs.replace(s, state=STEP_NOT_RUN)
        elif s.state == STEP_RUNNING:
            s = msgspec.structs.replace(s, state=STEP_TERMINATED, reason=reason, message=None)
        out.append(s)
    return out


def _stopped_without_pod(
    task: Task, old: TaskStatus | None, stop: Stop, now: datetime
) -> TaskStatus:
    """Cancelled or timed out with no pod (never created, or gone): final at once."""
    had_pod = old is not None and old.pod_name
    steps = list(old.steps) if old is not None and old.steps else []
    steps = steps or [StepStatus(name=s.name, state=STEP_WAITING) for s in task.spec.steps]
    doing = f"pod {old.pod_name} is gone" if old is not None and had_pod else "no pod was created"
    return _finished(
        task,
        old,
        _finalize(steps, stop.reason),
        stop.status,
        stop.reason,
        f"{stop.why}; {doing}",
        start=parse_time(old.start_time) if old is not None and old.start_time else None,
        now=now,
        ends_now=True,
        pod_name_=old.pod_name if old is not None else None,
        sidecars=list(old.sidecars) if old is not None else [],
    )


def _pod_gone(task: Task, old: TaskStatus, now: datetime) -> TaskStatus:
    """status.podName is set but the pod is gone: Failure/PodDeleted (never a silent re-run)."""
    steps = list(old.steps) or [
        StepStatus(name=s.name, state=STEP_WAITING) for s in task.spec.steps
    ]
    open_end = any(s.state == STEP_RUNNING for s in steps) or not any(s.finished_at for s in steps)
    steps = _finalize(steps, POD_DELETED)
    message = (
        f"pod {old.pod_name} was deleted before the Task finished; "
        "delete and re-create the Task to run it again"
    )
    return _finished(
        task,
        old,
        steps,
        FAILURE,
        POD_DELETED,
        message,
        start=parse_time(old.start_time) if old.start_time else None,
        now=now,
        ends_now=open_end,
        pod_name_=old.pod_name,
        sidecars=list(old.sidecars),  # as the pod last reported them
    )


def _with_pod(task: Task, pod: Pod, now: datetime, settings: Settings) -> Evaluation:
    old = task.status
    steps = step_statuses(task, pod)
    sidecars = sidecar_statuses(task, pod)
    out = outcome(task, pod, steps, now, settings)
    start = start_of(steps, pod)
    # a failure the kubelet did not timestamp ends "now" if a step was still running (or none
    # ever finished); otherwise at the last container timestamp
    open_end = out.completes_now and (
        any(s.state == STEP_RUNNING for s in steps) or not any(s.finished_at for s in steps)
    )
    if out.status in (FAILURE, CANCELLED):
        failed = next((i for i, s in enumerate(steps) if is_failed(s)), None)
        steps = _finalize(steps, out.reason)
        if failed is not None:
            # the kubelet never runs later steps; say so even if it reports them as waiting
            steps = [
                msgspec.structs.replace(s, state=STEP_NOT_RUN, reason=None, message=None)
                if i > failed and s.state != STEP_TERMINATED
                else s
                for i, s in enumerate(steps)
            ]
    if out.status in FINISHED:
        status = _finished(
            task,
            old,
            steps,
            out.status,
            out.reason,
            out.message,
            start=start,
            now=now,
            ends_now=open_end,
            pod_name_=pod.metadata.name,
            sidecars=sidecars,
        )
        return Evaluation(status=status)
    if out.status != RUNNING:
        start = None  # START stays empty until a step has started
    status = TaskStatus(
        status=out.status,
        start_at=format_start_at(start) if start else None,
        start_time=format_time(start) if start else None,
        pod_name=pod.metadata.name,
        progress=progress(steps),
        steps=steps,
        sidecars=sidecars,
        conditions=[_condition(old, "Unknown", out.reason, out.message, now)],
        observed_generation=task.metadata.generation,
    )
    return Evaluation(status=status, requeue_after=out.requeue_after)


def _finished(
    task: Task,
    old: TaskStatus | None,
    steps: list[StepStatus],
    status: str,
    reason: str,
    message: str,
    *,
    start: datetime | None,
    now: datetime,
    ends_now: bool,
    pod_name_: str | None,
    sidecars: list[SidecarStatus] | None = None,
) -> TaskStatus:
    ends = [parse_time(s.finished_at) for s in steps if s.finished_at]
    end: datetime | None = max(ends) if ends else None
    if ends_now:
        end = now
    if start is not None and end is not None and end < start:
        end = start
    return TaskStatus(
        status=status,
        start_at=format_start_at(start) if start else None,
        duration=(
            format_duration((end - start).total_seconds()) if start and end is not None else None
        ),
        start_time=format_time(start) if start else None,
        completion_time=format_time(end) if end is not None else None,
        pod_name=pod_name_,
        progress=progress(steps),
        steps=steps,
        sidecars=sidecars or [],
        conditions=[_condition(old, _cond_status(status), reason, message, now)],
        observed_generation=task.metadata.generation,
    )


def invalid_status(
    task: Task | None, reason: str, message: str, *, now: datetime, old: TaskStatus | None = None
) -> TaskStatus:
    """Failure before any pod ran (``InvalidSpec``, ``InvalidPodSpec``, a pod name that
    never freed)."""
    if old is None and task is not None:
        old = task.status
    steps = [StepStatus(name=s.name, state=STEP_NOT_RUN) for s in task.spec.steps] if task else []
    status = TaskStatus(
        status=FAILURE,
        completion_time=format_time(now),
        progress=progress(steps) if steps else None,
        steps=steps,
        conditions=[_condition(old, "False", reason, message, utc(now))],
        observed_generation=task.metadata.generation if task else None,
    )
    return _carry(old, status)
