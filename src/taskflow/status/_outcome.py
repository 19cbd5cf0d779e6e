"""What the pod's state means for the Task: the status word, the condition's reason and
message, and for a pending timeout when to look again. Failures are classified here, and
so is a Task asked to stop (cancel, timeout): it keeps its word with reason ``Stopping``
until the pod has stopped, then ends ``Cancelled`` or ``Failure/TimedOut``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from taskflow.api.pod import Pod, PodCondition
from taskflow.api.task import INSTALL_CONTAINER, Task
from taskflow.api.task_status import (
    FAILURE,
    PENDING,
    RUNNING,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    SUCCESSFUL,
    StepStatus,
)
from taskflow.settings import Settings
from taskflow.status._agent import (
    STEP_REASON_AGENT_DIED,
    STEP_REASON_MISMATCH,
    STEP_REASON_RESULTS,
    STEP_REASON_TIMED_OUT,
    STEP_REASON_UNREADABLE,
    agent_image,
    install_failure,
    installing,
    is_agent_pod,
)
from taskflow.status._clock import format_duration, parse_time, utc
from taskflow.status._pull import image_not_found, pull_refused
from taskflow.status._reasons import (
    AGENT_DIED,
    AGENT_INSTALL_FAILED,
    CONFIG_RETRY,
    CONTAINER_CONFIG_ERROR,
    CRASH_LOOP,
    DEADLINE_EXCEEDED,
    EVICTED,
    EVICTION_DISRUPTIONS,
    IMAGE_PULL_FAILED,
    OOM_KILLED,
    POD_DELETED,
    POD_FAILED,
    PULL_FATAL,
    PULL_RETRY,
    REASON_CREATE_CONTAINER_ERROR,
    REASON_IMAGE_PULL_BACKOFF,
    REASON_PENDING,
    REASON_RUNNING,
    REASON_STOPPING,
    REASON_SUCCEEDED,
    REASON_UNSCHEDULABLE,
    RESULTS_TOO_LARGE,
    SIDECAR_FAILED,
    STATE_UNREADABLE,
    STEP_FAILED,
    STEP_STATE_MISMATCH,
    STEP_TIMEOUT,
)
from taskflow.status._sidecars import unstarted
from taskflow.status._steps import became_current, current_step, is_failed
from taskflow.status._stop import STOP_DEADLINE, pod_stopped, stop_of


class Outcome(msgspec.Struct, kw_only=True):
    status: str
    reason: str
    message: str
    requeue_after: float | None = None
    #: a failure without any container timestamp: completion = now
    completes_now: bool = False


def _label(task: Task, i: int) -> str:
    """``step <name> (<i+1>/<n>)``."""
    return f"step {task.spec.steps[i].name} ({i + 1}/{len(task.spec.steps)})"


def _step_failure(task: Task, pod: Pod, steps: list[StepStatus], i: int) -> tuple[str, str]:
    s = steps[i]
    label = _label(task, i)
    deadline = task.spec.active_deadline_seconds
    if (
        deadline is not None
        and pod.status.start_time is not None
        and s.finished_at
        and (parse_time(s.finished_at) - utc(pod.status.start_time)).total_seconds() >= deadline
        and s.exit_code in (137, 143)
    ):
        return DEADLINE_EXCEEDED, _deadline_message(task, label)
    if s.reason == STEP_REASON_TIMED_OUT:
        return (
            STEP_TIMEOUT,
            f"{label} timed out ({s.message or 'its timeout'}; exit code {s.exit_code})",
        )
    if s.reason == STEP_REASON_RESULTS:
        return RESULTS_TOO_LARGE, f"{label}: its results do not fit: {s.message}"
    if s.reason == STEP_REASON_MISMATCH:
        return STEP_STATE_MISMATCH, f"{label}: {s.message}; the kubelet's account wins"
    if s.reason == STEP_REASON_UNREADABLE:
        return STATE_UNREADABLE, f"{label}: {s.message}"
    if s.reason == STEP_REASON_AGENT_DIED:
        return AGENT_DIED, f"{label}: {s.message}"
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
    deadline = task.spec.active_deadline_seconds
    if deadline is None:  # set on the pod by someone else (the Task has none)
        msg = "the pod ran longer than its activeDeadlineSeconds"
    else:
        msg = f"the Task ran longer than activeDeadlineSeconds ({deadline}s)"
    return msg + (f"; {label} was stopped" if label else "")


def outcome(
    task: Task, pod: Pod, steps: list[StepStatus], now: datetime, settings: Settings
) -> Outcome:
    natural = _natural(task, pod, steps, now, settings)
    stop = stop_of(task, now, settings)
    if stop is None or natural.status == SUCCESSFUL:
        return natural  # (a pod that succeeded before the stop took effect stays a success)
    cur = current_step(steps)
    if natural.status in (PENDING, RUNNING):
        doing = natural.message
    elif cur is not None and steps[cur].started_at:
        doing = f"{_label(task, cur)} was running"
    elif cur is not None:
        doing = f"{_label(task, cur)} had not started"
    else:
        doing = natural.message
    if pod_stopped(pod):
        return Outcome(
            status=stop.status,
            reason=stop.reason,
            message=f"{stop.why}; {doing}",
            completes_now=True,
        )
    started = any(x.state in (STEP_RUNNING, STEP_TERMINATED) for x in steps)
    return Outcome(
        status=RUNNING if started else PENDING,
        reason=REASON_STOPPING,
        message=f"{stop.why}: stopping the pod ({doing})",
    )


def _natural(
    task: Task, pod: Pod, steps: list[StepStatus], now: datetime, settings: Settings
) -> Outcome:
    """What the pod's state means if nobody asked the Task to stop."""
    cur = current_step(steps)
    if cur is None:
        return Outcome(
            status=SUCCESSFUL, reason=REASON_SUCCEEDED, message=f"all {len(steps)} steps succeeded"
        )
    label = _label(task, cur)
    eviction = _eviction(pod)
    # the order matters: a deleted pod's steps look failed, an ended pod's look waiting
    if (deleted := _deleted(pod, label, eviction)) is not None:
        return deleted
    if (install := _install_failed(pod)) is not None:
        return install
    if (failed := _failed(task, pod, steps, label, eviction)) is not None:
        return failed
    if pod.status.phase == "Succeeded":
        return _no_result(pod, label)
    if (sidecar := _sidecars(task, pod, now, settings)) is not None:
        return sidecar
    if (stuck := _stuck(task, pod, steps, cur, label, now, settings)) is not None:
        return stuck
    return _not_started(task, pod, steps, cur, label)


def _eviction(pod: Pod) -> PodCondition | None:
    """The pod's ``DisruptionTarget`` condition if it says the pod is being evicted."""
    disruption = pod.status.condition("DisruptionTarget")
    if (
        disruption is not None
        and disruption.status == "True"
        and disruption.reason in EVICTION_DISRUPTIONS
    ):
        return disruption
    return None


def _joined(*parts: str | None) -> str:
    """The parts that say something, ``: ``-separated."""
    return ": ".join(x for x in parts if x)


def _deleted(pod: Pod, label: str, eviction: PodCondition | None) -> Outcome | None:
    """A pod going away before it ended: evicted, or deleted by someone."""
    if pod.metadata.deletion_timestamp is None or pod.status.phase in ("Succeeded", "Failed"):
        return None
    if eviction is not None:
        return Outcome(
            status=FAILURE,
            reason=EVICTED,
            message=(
                f"the pod was evicted while {label} ran: "
                f"{_joined(eviction.reason, eviction.message)}"
            ),
            completes_now=True,
        )
    return Outcome(
        status=FAILURE,
        reason=POD_DELETED,
        message=(
            f"pod {pod.metadata.name} was deleted before the Task finished "
            f"({label} had not finished); delete and re-create the Task to run it "
            "again"
        ),
        completes_now=True,
    )


def _install_failed(pod: Pod) -> Outcome | None:
    """The agent's install container failed: no step could run."""
    if not is_agent_pod(pod) or (install := install_failure(pod)) is None:
        return None
    kubelet_reason, detail = install
    return Outcome(
        status=FAILURE,
        reason=AGENT_INSTALL_FAILED,
        message=(
            f"the agent could not be installed ({INSTALL_CONTAINER} with image "
            f"{agent_image(pod)!r}: {kubelet_reason}, {detail}); no step ran"
        ),
        completes_now=True,
    )


def _failed(
    task: Task, pod: Pod, steps: list[StepStatus], label: str, eviction: PodCondition | None
) -> Outcome | None:
    """A failed pod or a failed step: eviction, deadline, the step's own failure, or else."""
    phase = pod.status.phase
    failed = next((i for i, s in enumerate(steps) if is_failed(s)), None)
    if phase != "Failed" and failed is None:
        return None
    pod_reason = pod.status.reason or ""
    pod_message = (pod.status.message or "").strip()
    if pod_reason == "Evicted" or (phase == "Failed" and eviction is not None):
        detail = pod_message
        if pod_reason != "Evicted" and eviction is not None:
            detail = _joined(eviction.reason, eviction.message)
        return Outcome(
            status=FAILURE,
            reason=EVICTED,
            message=f"the pod was evicted while {label} ran: {detail}".rstrip(": "),
            completes_now=True,
        )
    # a pod that taskflow stopped because a step failed: the step's failure is the news
    ours = failed is not None and pod.spec.active_deadline_seconds == STOP_DEADLINE
    if pod_reason == "DeadlineExceeded" and not ours:
        return Outcome(
            status=FAILURE,
            reason=DEADLINE_EXCEEDED,
            message=_deadline_message(task, label),
            completes_now=True,
        )
    if failed is not None:
        reason, message = _step_failure(task, pod, steps, failed)
        return Outcome(status=FAILURE, reason=reason, message=message)
    return Outcome(
        status=FAILURE,
        reason=POD_FAILED,
        message=(
            f"the pod failed before {label} finished: "
            f"{_joined(pod_reason, pod_message) or 'no reason given'}"
        ),
        completes_now=True,
    )


def _no_result(pod: Pod, label: str) -> Outcome:
    """Every container has ended, yet a step has no result (the pod's container statuses
    are missing or stale): nothing will change any more, so say what is known."""
    detail = _joined(pod.status.reason, (pod.status.message or "").strip())
    return Outcome(
        status=FAILURE,
        reason=POD_FAILED,
        message=(
            f"the pod ended (phase Succeeded{', ' + detail if detail else ''}) but "
            f"reported no result for {label}"
        ),
        completes_now=True,
    )


class _Blocked(msgspec.Struct, frozen=True, kw_only=True):
    """A container that cannot start yet: what the kubelet says and what failing means."""

    label: str
    waiting: str | None
    message: str | None
    image: str
    #: since when it has been the one to start (the timeouts count from here)
    since: datetime | None
    pull_failed: str
    refused: str
    config_failed: str
    #: a step has started (the Task is Running while this waits)
    started: bool


def _stuck(
    task: Task,
    pod: Pod,
    steps: list[StepStatus],
    cur: int,
    label: str,
    now: datetime,
    settings: Settings,
) -> Outcome | None:
    """The current step cannot start: its image cannot be pulled, or its container cannot be
    created. Fatal at once, or after a timeout while the kubelet retries."""
    s = steps[cur]
    image = task.spec.steps[cur].image
    pull_failed = IMAGE_PULL_FAILED
    if is_agent_pod(pod) and installing(pod):  # the steps wait for the agent image
        image, pull_failed = agent_image(pod) or "the agent image", AGENT_INSTALL_FAILED
    blocked = _Blocked(
        label=label,
        waiting=s.reason if s.state == STEP_WAITING else None,
        message=s.message,
        image=image,
        since=became_current(steps, cur, pod),
        pull_failed=pull_failed,
        refused=IMAGE_PULL_FAILED,
        config_failed=CONTAINER_CONFIG_ERROR,
        started=any(x.state != STEP_WAITING for x in steps),
    )
    return _cannot_start(task, pod, blocked, now, settings)


def _cannot_start(
    task: Task, pod: Pod, b: _Blocked, now: datetime, settings: Settings
) -> Outcome | None:
    """A step's or a sidecar's pull or container-creation problem (:mod:`._pull`)."""
    waiting = b.waiting
    detail = f": {b.message.strip()}" if b.message else ""
    if waiting in PULL_FATAL:
        return Outcome(
            status=FAILURE,
            reason=b.pull_failed,
            message=f"{b.label}: cannot pull image {b.image!r} ({waiting}){detail}",
            completes_now=True,
        )
    refused = pull_refused(task, pod, b.message, b.image) if waiting in PULL_RETRY else None
    if refused is not None:  # no retry can pull what the registry or the index does not have
        return Outcome(
            status=FAILURE,
            # an image the registry does not have fails as a pull does (a missing agent
            # image: AgentInstallFailed, never retried); a platform mismatch may be retried
            # (the next pod may land on another node)
            reason=b.pull_failed if image_not_found(b.message) else b.refused,
            message=f"{b.label}: {refused}",
            completes_now=True,
        )
    if waiting not in PULL_RETRY and waiting not in CONFIG_RETRY:
        return None
    pull = waiting in PULL_RETRY
    timeout = settings.image_pull_timeout if pull else settings.config_error_timeout
    elapsed = (now - (b.since or now)).total_seconds()
    what = f"cannot pull image {b.image!r}" if pull else "cannot create the container"
    if elapsed >= timeout:
        return Outcome(
            status=FAILURE,
            reason=b.pull_failed if pull else b.config_failed,
            message=f"{b.label}: {what} for {format_duration(elapsed)} ({waiting}){detail}",
            completes_now=True,
        )
    return Outcome(
        status=RUNNING if b.started else PENDING,
        reason=REASON_IMAGE_PULL_BACKOFF if pull else REASON_CREATE_CONTAINER_ERROR,
        message=(
            f"{b.label}: {what} ({waiting}){detail}; the Task fails if this lasts "
            f"{format_duration(timeout)}"
        ),
        requeue_after=max(1.0, timeout - elapsed),
    )


def _sidecars(task: Task, pod: Pod, now: datetime, settings: Settings) -> Outcome | None:
    """A sidecar that cannot start: ``SidecarFailed`` (its image, its container, a crash
    loop before its startupProbe passed), at once or after the step rules' timeouts."""
    since = utc(pod.status.start_time or pod.metadata.creation_timestamp or now)
    for u in unstarted(task, pod):
        label = f"sidecar {u.sidecar.name}"
        if u.reason == CRASH_LOOP:
            detail = f": {u.message.strip()}" if u.message else ""
            last = f"; its last run ended with {u.last_exit}" if u.last_exit else ""
            return Outcome(
                status=FAILURE,
                reason=SIDECAR_FAILED,
                message=f"{label} keeps failing before it started ({CRASH_LOOP}{detail}){last}",
                completes_now=True,
            )
        blocked = _Blocked(
            label=label,
            waiting=u.reason,
            message=u.message,
            image=u.sidecar.image,
            since=since,
            pull_failed=SIDECAR_FAILED,
            refused=SIDECAR_FAILED,
            config_failed=SIDECAR_FAILED,
            started=False,
        )
        if (out := _cannot_start(task, pod, blocked, now, settings)) is not None:
            return out
    return None


def _not_started(task: Task, pod: Pod, steps: list[StepStatus], cur: int, label: str) -> Outcome:
    """Nothing is wrong (yet): the current step is running, starting, or waiting for the pod
    to be scheduled or to start."""
    s = steps[cur]
    waiting = f" ({s.reason})" if s.state == STEP_WAITING and s.reason else ""
    # a step that started proves the pod was scheduled, whatever a stale condition says
    if any(x.state in (STEP_RUNNING, STEP_TERMINATED) for x in steps):
        if s.state == STEP_RUNNING:
            return Outcome(status=RUNNING, reason=REASON_RUNNING, message=f"{label} is running")
        return Outcome(
            status=RUNNING, reason=REASON_RUNNING, message=f"{label} is starting{waiting}"
        )
    scheduled = pod.status.condition("PodScheduled")
    if (
        scheduled is not None
        and scheduled.status == "False"
        and scheduled.reason == "Unschedulable"
    ):
        return Outcome(
            status=PENDING,
            reason=REASON_UNSCHEDULABLE,
            message=f"the pod cannot be scheduled: {(scheduled.message or '').strip()}".rstrip(
                ": "
            ),
        )
    # the steps wait for the sidecars; say which one, once its turn has come
    sidecar = next((u for u in unstarted(task, pod) if u.reason != "PodInitializing"), None)
    if sidecar is not None:
        label = f"sidecar {sidecar.sidecar.name}"
        waiting = f" ({sidecar.reason})" if sidecar.reason else ""
    return Outcome(
        status=PENDING, reason=REASON_PENDING, message=f"waiting for {label} to start{waiting}"
    )
