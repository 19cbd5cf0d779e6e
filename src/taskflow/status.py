"""Task + Pod -> TaskStatus (pure).

Status words (the STATUS column): ``Pending`` (no step has started), ``Running``,
``Successful``, ``Failure``. A finished status never changes again.

``progress`` is ``k/n`` where k is the number of steps that have *started* (running or
finished): ``0/3`` before the first step starts, ``2/3`` while step 2 runs, ``3/3`` once the
Task succeeded, and on failure the position of the step that failed (or of the last step
that started).

Times come from the kubelet's container timestamps, never from the controller's clock:
``startTime``/``startAt`` are the first step's start (the pod's ``startTime`` until a step
has one), ``completionTime`` is the end of the last step that finished, and ``duration``
(Go style: ``31s``, ``1m5s``, ``1h2m3s``) is the difference, set only when the Task ends.
Only failures without any container timestamp (a pod deleted or an image never pulled) fall
back to ``now`` for ``completionTime``.

Failure reasons (condition ``Succeeded=False``; the message names the step):

============================  ====================================================
``StepFailed``                a step exited non-zero (the last step included)
``OOMKilled``                 a step was killed for exceeding its memory limit
``ImagePullFailed``           ``ErrImagePull``/``ImagePullBackOff`` for longer than
                              ``settings.image_pull_timeout``; ``InvalidImageName`` and
                              ``ErrImageNeverPull`` at once
``ContainerConfigError``      ``CreateContainerConfigError``/``CreateContainerError`` for
                              longer than ``settings.config_error_timeout``
``Evicted``                   the pod was evicted (node pressure, eviction API, preemption)
``DeadlineExceeded``          ``spec.activeDeadlineSeconds`` passed
``PodFailed``                 the pod failed for any other reason (e.g. kubelet admission)
``PodDeleted``                the pod disappeared (or is being deleted) before the end
``InvalidPodSpec``            the API server rejected the pod (:func:`reconcile.rejected`)
``InvalidSpec``               the Task cannot be decoded (:func:`reconcile.undecodable`)
============================  ====================================================

An unschedulable pod stays ``Pending``; the condition carries reason ``Unschedulable`` and
the scheduler's message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from taskflow.api.pod import ContainerStatus, Pod
from taskflow.api.task import (
    CONDITION_SUCCEEDED,
    FAILURE,
    PENDING,
    RUNNING,
    STEP_NOT_RUN,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    SUCCESSFUL,
    Condition,
    StepStatus,
    Task,
    TaskStatus,
)
from taskflow.render import pod_name, spec_problem
from taskflow.settings import Settings

# --- failure reasons ---
STEP_FAILED: Final = "StepFailed"
OOM_KILLED: Final = "OOMKilled"
IMAGE_PULL_FAILED: Final = "ImagePullFailed"
CONTAINER_CONFIG_ERROR: Final = "ContainerConfigError"
EVICTED: Final = "Evicted"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
POD_FAILED: Final = "PodFailed"
POD_DELETED: Final = "PodDeleted"
INVALID_POD_SPEC: Final = "InvalidPodSpec"
INVALID_SPEC: Final = "InvalidSpec"
FAILURE_REASONS: Final = (
    STEP_FAILED,
    OOM_KILLED,
    IMAGE_PULL_FAILED,
    CONTAINER_CONFIG_ERROR,
    EVICTED,
    DEADLINE_EXCEEDED,
    POD_FAILED,
    POD_DELETED,
    INVALID_POD_SPEC,
    INVALID_SPEC,
)

# --- other condition reasons ---
REASON_PENDING: Final = "Pending"
REASON_RUNNING: Final = "Running"
REASON_SUCCEEDED: Final = "Succeeded"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_IMAGE_PULL_BACKOFF: Final = "ImagePullBackOff"
REASON_CREATE_CONTAINER_ERROR: Final = "CreateContainerConfigError"
#: condition reasons of a Pending/Running Task that point at a problem (worth an event)
PROBLEM_REASONS: Final = frozenset(
    {REASON_UNSCHEDULABLE, REASON_IMAGE_PULL_BACKOFF, REASON_CREATE_CONTAINER_ERROR}
)

# kubelet waiting reasons
_PULL_RETRY: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
_PULL_FATAL: Final = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_CONFIG: Final = frozenset({"CreateContainerConfigError", "CreateContainerError"})
_EVICTION_DISRUPTIONS: Final = frozenset(
    {
        "EvictionByEvictionAPI",
        "PreemptionByScheduler",
        "DeletionByTaintManager",
        "TerminationByKubelet",
    }
)

MAX_CONDITION_MESSAGE: Final = 1024


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """The new status and when to look again if nothing else happens."""

    status: TaskStatus
    #: seconds until a pending timeout (image pull / config error) would fire
    requeue_after: float | None = None


# ---------------------------------------------------------------------------------------------
# formatting


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ts(dt: datetime | None) -> str | None:
    """A kubelet timestamp, formatted; the zero time some runtimes report (e.g. ``startedAt``
    of a container that could not start) counts as absent."""
    if dt is None or _utc(dt).year < 2000:
        return None
    return format_time(dt)


def format_time(dt: datetime) -> str:
    """RFC 3339, UTC, whole seconds: ``2024-01-06T22:19:24Z``."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_start_at(dt: datetime) -> str:
    """The START column: ``2024-01-06 22:19:24`` (UTC)."""
    return _utc(dt).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any RFC 3339 timestamp)."""
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``0s``, ``31s``, ``1m5s``,
    ``1h0m0s``, ``25h1m1s`` (fractions are truncated, negatives count as 0)."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def _truncate(text: str, limit: int = MAX_CONDITION_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# evaluation


class _Outcome(msgspec.Struct, kw_only=True):
    word: str
    reason: str
    message: str
    requeue_after: float | None = None
    #: a failure without any container timestamp: completion = now
    completion_fallback_now: bool = False


def compute_status(task: Task, pod: Pod | None, *, now: datetime, settings: Settings) -> TaskStatus:
    """The Task's status given its pod (None when there is none)."""
    return evaluate(task, pod, now=now, settings=settings).status


def evaluate(task: Task, pod: Pod | None, *, now: datetime, settings: Settings) -> Evaluation:
    """:func:`compute_status` plus the time after which to evaluate again."""
    old = task.status
    if old is not None and old.finished:
        return Evaluation(status=old)
    now = _utc(now)
    if (problem := spec_problem(task)) is not None:
        return Evaluation(status=invalid_status(task, INVALID_SPEC, problem, now=now))
    if pod is None:
        if old is not None and old.pod_name:
            return Evaluation(status=_pod_gone(task, old, now))
        return Evaluation(status=_not_created(task, old, now))
    return _with_pod(task, pod, now, settings)


def _label(task: Task, i: int) -> str:
    """``step <name> (<i+1>/<n>)``."""
    return f"step {task.spec.steps[i].name} ({i + 1}/{len(task.spec.steps)})"


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
    return {SUCCESSFUL: "True", FAILURE: "False"}.get(word, "Unknown")


def _progress(steps: list[StepStatus]) -> str:
    started = sum(1 for s in steps if s.state in (STEP_RUNNING, STEP_TERMINATED))
    return f"{started}/{len(steps)}"


def _not_created(task: Task, old: TaskStatus | None, now: datetime) -> TaskStatus:
    name = pod_name(task.metadata.name)
    steps = [StepStatus(name=s.name, state=STEP_WAITING) for s in task.spec.steps]
    return TaskStatus(
        status=PENDING,
        pod_name=name,
        progress=_progress(steps),
        steps=steps,
        conditions=[
            _condition(old, "Unknown", REASON_PENDING, f"creating pod {name}", now),
        ],
        observed_generation=task.metadata.generation,
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
        fallback_now=open_end,
        pod_name_=old.pod_name,
    )


def _step_statuses(task: Task, pod: Pod) -> list[StepStatus]:
    by_name: dict[str, ContainerStatus] = {}
    for cs in [*pod.status.init_container_statuses, *pod.status.container_statuses]:
        by_name[cs.name] = cs
    out = []
    for step in task.spec.steps:
        found = by_name.get(step.name)
        state = found.state if found is not None else None
        if state is not None and state.terminated is not None:
            t = state.terminated
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_TERMINATED,
                    exit_code=t.exit_code,
                    reason=t.reason or None,
                    message=t.message or None,
                    started_at=_ts(t.started_at),
                    finished_at=_ts(t.finished_at),
                )
            )
        elif state is not None and state.running is not None:
            r = state.running
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_RUNNING,
                    started_at=_ts(r.started_at),
                )
            )
        else:
            w = state.waiting if state is not None else None
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_WAITING,
                    reason=(w.reason or None) if w else None,
                    message=(w.message or None) if w else None,
                )
            )
    return out


def _ok(s: StepStatus) -> bool:
    return s.state == STEP_TERMINATED and s.exit_code == 0


def _failed(s: StepStatus) -> bool:
    return s.state == STEP_TERMINATED and s.exit_code != 0


def _start_of(steps: list[StepStatus], pod: Pod) -> datetime | None:
    if steps and steps[0].started_at:
        return parse_time(steps[0].started_at)
    if pod.status.start_time is not None:
        return _utc(pod.status.start_time)
    return None


def _became_current(steps: list[StepStatus], i: int, pod: Pod) -> datetime | None:
    prev_end = steps[i - 1].finished_at if i > 0 else None
    if prev_end:
        return parse_time(prev_end)
    if pod.status.start_time is not None:
        return _utc(pod.status.start_time)
    if pod.metadata.creation_timestamp is not None:
        return _utc(pod.metadata.creation_timestamp)
    return None


def _step_failure(task: Task, pod: Pod, steps: list[StepStatus], i: int) -> tuple[str, str]:
    s = steps[i]
    label = _label(task, i)
    deadline = task.spec.active_deadline_seconds
    if (
        deadline is not None
        and pod.status.start_time is not None
        and s.finished_at
        and (parse_time(s.finished_at) - _utc(pod.status.start_time)).total_seconds() >= deadline
        and s.exit_code in (137, 143)
    ):
        return DEADLINE_EXCEEDED, _deadline_message(task, label)
    if s.reason == "OOMKilled":
        return OOM_KILLED, (
            f"{label} was killed for exceeding its memory limit (OOMKilled, "
            f"exit code {s.exit_code})"
        )
    message = f"{label} failed with exit code {s.exit_code}"
    if s.reason and s.reason not in ("Error", "Completed"):
        message += f" ({s.reason})"
    if s.message:
        message += f": {s.message.strip()}"
    return STEP_FAILED, message


def _deadline_message(task: Task, label: str | None) -> str:
    msg = f"the Task ran longer than activeDeadlineSeconds ({task.spec.active_deadline_seconds}s)"
    return msg + (f"; {label} was stopped" if label else "")


def _current(steps: list[StepStatus]) -> int | None:
    """Index of the first step that has not succeeded."""
    for i, s in enumerate(steps):
        if not _ok(s):
            return i
    return None


def _outcome(
    task: Task, pod: Pod, steps: list[StepStatus], now: datetime, settings: Settings
) -> _Outcome:
    n = len(steps)
    phase = pod.status.phase
    cur = _current(steps)
    failed = next((i for i, s in enumerate(steps) if _failed(s)), None)
    pod_reason = pod.status.reason or ""
    pod_message = (pod.status.message or "").strip()
    running_label = _label(task, cur) if cur is not None else None
    disruption = pod.status.condition("DisruptionTarget")
    disrupted = (
        disruption is not None
        and disruption.status == "True"
        and disruption.reason in _EVICTION_DISRUPTIONS
    )

    if cur is None:
        return _Outcome(
            word=SUCCESSFUL, reason=REASON_SUCCEEDED, message=f"all {n} steps succeeded"
        )

    if pod.metadata.deletion_timestamp is not None and phase not in ("Succeeded", "Failed"):
        if disrupted and disruption is not None:
            detail = ": ".join(x for x in (disruption.reason, disruption.message) if x)
            return _Outcome(
                word=FAILURE,
                reason=EVICTED,
                message=f"the pod was evicted while {running_label} ran: {detail}",
                completion_fallback_now=True,
            )
        return _Outcome(
            word=FAILURE,
            reason=POD_DELETED,
            message=(
                f"pod {pod.metadata.name} was deleted before the Task finished "
                f"({running_label} had not finished); delete and re-create the Task to run it "
                "again"
            ),
            completion_fallback_now=True,
        )

    if phase == "Failed" or failed is not None:
        if pod_reason == "Evicted" or (phase == "Failed" and disrupted):
            detail = pod_message
            if pod_reason != "Evicted" and disruption is not None:
                detail = ": ".join(x for x in (disruption.reason, disruption.message) if x)
            return _Outcome(
                word=FAILURE,
                reason=EVICTED,
                message=f"the pod was evicted while {running_label} ran: {detail}".rstrip(": "),
                completion_fallback_now=True,
            )
        if pod_reason == "DeadlineExceeded":
            return _Outcome(
                word=FAILURE,
                reason=DEADLINE_EXCEEDED,
                message=_deadline_message(task, running_label),
                completion_fallback_now=True,
            )
        if failed is not None:
            reason, message = _step_failure(task, pod, steps, failed)
            return _Outcome(word=FAILURE, reason=reason, message=message)
        detail = ": ".join(x for x in (pod_reason, pod_message) if x) or "no reason given"
        return _Outcome(
            word=FAILURE,
            reason=POD_FAILED,
            message=f"the pod failed before {running_label} finished: {detail}",
            completion_fallback_now=True,
        )

    s = steps[cur]
    waiting = s.reason if s.state == STEP_WAITING else None
    image = task.spec.steps[cur].image
    detail = f": {s.message.strip()}" if s.message else ""
    if waiting in _PULL_FATAL:
        return _Outcome(
            word=FAILURE,
            reason=IMAGE_PULL_FAILED,
            message=f"{running_label}: cannot pull image {image!r} ({waiting}){detail}",
            completion_fallback_now=True,
        )
    if waiting in _PULL_RETRY or waiting in _CONFIG:
        pull = waiting in _PULL_RETRY
        timeout = settings.image_pull_timeout if pull else settings.config_error_timeout
        since = _became_current(steps, cur, pod) or now
        elapsed = (now - since).total_seconds()
        what = f"cannot pull image {image!r}" if pull else "cannot create the container"
        if elapsed >= timeout:
            return _Outcome(
                word=FAILURE,
                reason=IMAGE_PULL_FAILED if pull else CONTAINER_CONFIG_ERROR,
                message=(
                    f"{running_label}: {what} for {format_duration(elapsed)} ({waiting}){detail}"
                ),
                completion_fallback_now=True,
            )
        word = RUNNING if any(x.state != STEP_WAITING for x in steps) else PENDING
        return _Outcome(
            word=word,
            reason=REASON_IMAGE_PULL_BACKOFF if pull else REASON_CREATE_CONTAINER_ERROR,
            message=(
                f"{running_label}: {what} ({waiting}){detail}; the Task fails if this lasts "
                f"{format_duration(timeout)}"
            ),
            requeue_after=max(1.0, timeout - elapsed),
        )

    # a step that started proves the pod was scheduled, whatever a stale condition says
    if any(x.state in (STEP_RUNNING, STEP_TERMINATED) for x in steps):
        if s.state == STEP_RUNNING:
            msg = f"{running_label} is running"
        else:
            msg = f"{running_label} is starting" + (f" ({waiting})" if waiting else "")
        return _Outcome(word=RUNNING, reason=REASON_RUNNING, message=msg)
    scheduled = pod.status.condition("PodScheduled")
    if (
        scheduled is not None
        and scheduled.status == "False"
        and scheduled.reason == "Unschedulable"
    ):
        return _Outcome(
            word=PENDING,
            reason=REASON_UNSCHEDULABLE,
            message=f"the pod cannot be scheduled: {(scheduled.message or '').strip()}".rstrip(
                ": "
            ),
        )

    return _Outcome(
        word=PENDING,
        reason=REASON_PENDING,
        message=f"waiting for {running_label} to start" + (f" ({waiting})" if waiting else ""),
    )


def _with_pod(task: Task, pod: Pod, now: datetime, settings: Settings) -> Evaluation:
    old = task.status
    steps = _step_statuses(task, pod)
    out = _outcome(task, pod, steps, now, settings)
    start = _start_of(steps, pod)
    # a failure the kubelet did not timestamp ends "now" if a step was still running (or none
    # ever finished); otherwise at the last container timestamp
    open_end = out.completion_fallback_now and (
        any(s.state == STEP_RUNNING for s in steps) or not any(s.finished_at for s in steps)
    )
    if out.word == FAILURE:
        failed = next((i for i, s in enumerate(steps) if _failed(s)), None)
        steps = _finalize(steps, out.reason)
        if failed is not None:
            # the kubelet never runs later steps; say so even if it reports them as waiting
            steps = [
                msgspec.structs.replace(s, state=STEP_NOT_RUN, reason=None, message=None)
                if i > failed and s.state != STEP_TERMINATED
                else s
                for i, s in enumerate(steps)
            ]
    if out.word in (SUCCESSFUL, FAILURE):
        status = _finished(
            task,
            old,
            steps,
            out.word,
            out.reason,
            out.message,
            start=start,
            now=now,
            fallback_now=open_end,
            pod_name_=pod.metadata.name,
        )
        return Evaluation(status=status)
    if out.word != RUNNING:
        start = None  # START stays empty until a step has started
    status = TaskStatus(
        status=out.word,
        start_at=format_start_at(start) if start else None,
        start_time=format_time(start) if start else None,
        pod_name=pod.metadata.name,
        progress=_progress(steps),
        steps=steps,
        conditions=[_condition(old, "Unknown", out.reason, out.message, now)],
        observed_generation=task.metadata.generation,
    )
    return Evaluation(status=status, requeue_after=out.requeue_after)


def _finished(
    task: Task,
    old: TaskStatus | None,
    steps: list[StepStatus],
    word: str,
    reason: str,
    message: str,
    *,
    start: datetime | None,
    now: datetime,
    fallback_now: bool,
    pod_name_: str | None,
) -> TaskStatus:
    ends = [parse_time(s.finished_at) for s in steps if s.finished_at]
    end: datetime | None = max(ends) if ends else None
    if fallback_now:
        end = now
    if start is not None and end is not None and end < start:
        end = start
    return TaskStatus(
        status=word,
        start_at=format_start_at(start) if start else None,
        duration=(
            format_duration((end - start).total_seconds()) if start and end is not None else None
        ),
        start_time=format_time(start) if start else None,
        completion_time=format_time(end) if end is not None else None,
        pod_name=pod_name_,
        progress=_progress(steps),
        steps=steps,
        conditions=[_condition(old, _cond_status(word), reason, message, now)],
        observed_generation=task.metadata.generation,
    )


def invalid_status(
    task: Task | None, reason: str, message: str, *, now: datetime, old: TaskStatus | None = None
) -> TaskStatus:
    """Failure before any pod ran (``InvalidSpec`` / ``InvalidPodSpec``)."""
    if old is None and task is not None:
        old = task.status
    steps = [StepStatus(name=s.name, state=STEP_NOT_RUN) for s in task.spec.steps] if task else []
    return TaskStatus(
        status=FAILURE,
        completion_time=format_time(now),
        progress=_progress(steps) if steps else None,
        steps=steps,
        conditions=[_condition(old, "False", reason, message, _utc(now))],
        observed_generation=task.metadata.generation if task else None,
    )
