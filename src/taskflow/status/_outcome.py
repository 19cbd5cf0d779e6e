"""What the pod's state means for the Task: the status word, the condition's reason and
message, and for a pending timeout when to look again. Failures are classified here, and
so is a Task asked to stop (cancel, timeout): it keeps its word with reason ``Stopping``
until the pod has stopped, then ends ``Cancelled`` or ``Failure/TimedOut``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from taskflow.api.pod import Pod
from taskflow.api.task import (
    FAILURE,
    INSTALL_CONTAINER,
    PENDING,
    RUNNING,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    SUCCESSFUL,
    StepStatus,
    Task,
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
from taskflow.status._pull import pull_refused
from taskflow.status._reasons import (
    AGENT_DIED,
    AGENT_INSTALL_FAILED,
    CONFIG_RETRY,
    CONTAINER_CONFIG_ERROR,
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
    STATE_UNREADABLE,
    STEP_FAILED,
    STEP_STATE_MISMATCH,
    STEP_TIMEOUT,
)
from taskflow.status._steps import became_current, current_step, is_failed
from taskflow.status._stop import STOP_DEADLINE, pod_stopped, stop_of


class Outcome(msgspec.Struct, kw_only=True):
    word: str
    reason: str
    message: str
    requeue_after: float | None = None
    #: a failure without any container timestamp: completion = now
    completion_fallback_now: bool = False


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
    if stop is None or natural.word == SUCCESSFUL:
        return natural  # (a pod that succeeded before the stop took effect stays a success)
    cur = current_step(steps)
    if natural.word in (PENDING, RUNNING):
        doing = natural.message
    elif cur is not None and steps[cur].started_at:
        doing = f"{_label(task, cur)} was running"
    elif cur is not None:
        doing = f"{_label(task, cur)} had not started"
    else:
        doing = natural.message
    if pod_stopped(pod):
        return Outcome(
            word=stop.word,
            reason=stop.reason,
            message=f"{stop.why}; {doing}",
            completion_fallback_now=True,
        )
    started = any(x.state in (STEP_RUNNING, STEP_TERMINATED) for x in steps)
    return Outcome(
        word=RUNNING if started else PENDING,
        reason=REASON_STOPPING,
        message=f"{stop.why}: stopping the pod ({doing})",
    )


def _natural(
    task: Task, pod: Pod, steps: list[StepStatus], now: datetime, settings: Settings
) -> Outcome:
    """What the pod's state means if nobody asked the Task to stop."""
    n = len(steps)
    phase = pod.status.phase
    cur = current_step(steps)
    failed = next((i for i, s in enumerate(steps) if is_failed(s)), None)
    pod_reason = pod.status.reason or ""
    pod_message = (pod.status.message or "").strip()
    running_label = _label(task, cur) if cur is not None else None
    disruption = pod.status.condition("DisruptionTarget")
    disrupted = (
        disruption is not None
        and disruption.status == "True"
        and disruption.reason in EVICTION_DISRUPTIONS
    )

    if cur is None:
        return Outcome(word=SUCCESSFUL, reason=REASON_SUCCEEDED, message=f"all {n} steps succeeded")

    if pod.metadata.deletion_timestamp is not None and phase not in ("Succeeded", "Failed"):
        if disrupted and disruption is not None:
            detail = ": ".join(x for x in (disruption.reason, disruption.message) if x)
            return Outcome(
                word=FAILURE,
                reason=EVICTED,
                message=f"the pod was evicted while {running_label} ran: {detail}",
                completion_fallback_now=True,
            )
        return Outcome(
            word=FAILURE,
            reason=POD_DELETED,
            message=(
                f"pod {pod.metadata.name} was deleted before the Task finished "
                f"({running_label} had not finished); delete and re-create the Task to run it "
                "again"
            ),
            completion_fallback_now=True,
        )

    if is_agent_pod(pod) and (install := install_failure(pod)) is not None:
        kubelet_reason, detail = install
        return Outcome(
            word=FAILURE,
            reason=AGENT_INSTALL_FAILED,
            message=(
                f"the agent could not be installed ({INSTALL_CONTAINER} with image "
                f"{agent_image(pod)!r}: {kubelet_reason}, {detail}); no step ran"
            ),
            completion_fallback_now=True,
        )

    if phase == "Failed" or failed is not None:
        if pod_reason == "Evicted" or (phase == "Failed" and disrupted):
            detail = pod_message
            if pod_reason != "Evicted" and disruption is not None:
                detail = ": ".join(x for x in (disruption.reason, disruption.message) if x)
            return Outcome(
                word=FAILURE,
                reason=EVICTED,
                message=f"the pod was evicted while {running_label} ran: {detail}".rstrip(": "),
                completion_fallback_now=True,
            )
        # a pod that taskflow stopped because a step failed: the step's failure is the news
        ours = failed is not None and pod.spec.active_deadline_seconds == STOP_DEADLINE
        if pod_reason == "DeadlineExceeded" and not ours:
            return Outcome(
                word=FAILURE,
                reason=DEADLINE_EXCEEDED,
                message=_deadline_message(task, running_label),
                completion_fallback_now=True,
            )
        if failed is not None:
            reason, message = _step_failure(task, pod, steps, failed)
            return Outcome(word=FAILURE, reason=reason, message=message)
        detail = ": ".join(x for x in (pod_reason, pod_message) if x) or "no reason given"
        return Outcome(
            word=FAILURE,
            reason=POD_FAILED,
            message=f"the pod failed before {running_label} finished: {detail}",
            completion_fallback_now=True,
        )

    if phase == "Succeeded":
        # every container has ended, yet a step has no result (the pod's container statuses
        # are missing or stale): nothing will change any more, so say what is known
        detail = ": ".join(x for x in (pod_reason, pod_message) if x)
        return Outcome(
            word=FAILURE,
            reason=POD_FAILED,
            message=(
                f"the pod ended (phase Succeeded{', ' + detail if detail else ''}) but "
                f"reported no result for {running_label}"
            ),
            completion_fallback_now=True,
        )

    s = steps[cur]
    waiting = s.reason if s.state == STEP_WAITING else None
    image = task.spec.steps[cur].image
    pull_failed = IMAGE_PULL_FAILED
    if is_agent_pod(pod) and installing(pod):  # the steps wait for the agent image
        image, pull_failed = agent_image(pod) or "the agent image", AGENT_INSTALL_FAILED
    detail = f": {s.message.strip()}" if s.message else ""
    if waiting in PULL_FATAL:
        return Outcome(
            word=FAILURE,
            reason=pull_failed,
            message=f"{running_label}: cannot pull image {image!r} ({waiting}){detail}",
            completion_fallback_now=True,
        )
    refused = pull_refused(task, pod, s.message, image) if waiting in PULL_RETRY else None
    if refused is not None:  # no retry can pull what the registry or the index does not have
        msg = f"{running_label}: {refused}"
        return Outcome(
            word=FAILURE, reason=IMAGE_PULL_FAILED, message=msg, completion_fallback_now=True
        )
    if waiting in PULL_RETRY or waiting in CONFIG_RETRY:
        pull = waiting in PULL_RETRY
        timeout = settings.image_pull_timeout if pull else settings.config_error_timeout
        since = became_current(steps, cur, pod) or now
        elapsed = (now - since).total_seconds()
        what = f"cannot pull image {image!r}" if pull else "cannot create the container"
        if elapsed >= timeout:
            return Outcome(
                word=FAILURE,
                reason=pull_failed if pull else CONTAINER_CONFIG_ERROR,
                message=(
                    f"{running_label}: {what} for {format_duration(elapsed)} ({waiting}){detail}"
                ),
                completion_fallback_now=True,
            )
        word = RUNNING if any(x.state != STEP_WAITING for x in steps) else PENDING
        return Outcome(
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
        return Outcome(word=RUNNING, reason=REASON_RUNNING, message=msg)
    scheduled = pod.status.condition("PodScheduled")
    if (
        scheduled is not None
        and scheduled.status == "False"
        and scheduled.reason == "Unschedulable"
    ):
        return Outcome(
            word=PENDING,
            reason=REASON_UNSCHEDULABLE,
            message=f"the pod cannot be scheduled: {(scheduled.message or '').strip()}".rstrip(
                ": "
            ),
        )

    return Outcome(
        word=PENDING,
        reason=REASON_PENDING,
        message=f"waiting for {running_label} to start" + (f" ({waiting})" if waiting else ""),
    )
