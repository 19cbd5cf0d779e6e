"""Decide what to do for one Task (pure): the :class:`Plan` the engine's writer applies.

Order of application for the engine: ``create_pod`` first (409 -> adopt if the existing pod
carries our task-UID label and go on with this plan as if created, else apply
:func:`name_taken`: wait for the name); then ``stop_pod``, ``events``; only when every
event is recorded (or was already: 409) write ``status`` (merge-patch on ``/status``, it
already names the pod). If the create is rejected (422/400)
apply :func:`rejected` instead; if it is refused for now (403) apply :func:`create_refused`
and retry with backoff; on any other error retry later without writing status.

Events are derived from the transition between the old and the new status alone, so a
reconcile that changes nothing says nothing, and a reconcile whose events could not all be
recorded leaves the old status in place and plans the same events again: each transition's
Event is recorded exactly once (the engine names an Event after its Task, reason and key, so
a repeat is a 409), across failed POSTs, status conflicts and operator restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from taskflow.api import decode_task_status
from taskflow.api.pod import Pod
from taskflow.api.task import Task
from taskflow.api.task_status import (
    CANCELLED,
    CONDITION_SUCCEEDED,
    FAILURE,
    PENDING,
    RUNNING,
    STEP_RUNNING,
    STEP_TERMINATED,
    SUCCESSFUL,
    AttemptStatus,
    Condition,
    StepStatus,
    TaskStatus,
)
from taskflow.render import ImageLookupError, Images, RenderError, lookups_needed, render_pod
from taskflow.settings import Settings
from taskflow.status import (
    IMAGE_LOOKUP_FAILED,
    INVALID_POD_SPEC,
    INVALID_SPEC,
    MAX_CONDITION_MESSAGE,
    PROBLEM_REASONS,
    REASON_STOPPING,
    RETRYABLE_REASONS,
    UNSUPPORTED,
    current_attempt,
    deadline_of,
    evaluate,
    format_time,
    gave_up_waiting,
    invalid_status,
    name_wait_status,
    needs_stop,
    parse_time,
    refused_status,
    stop_of,
)

MAX_EVENT_MESSAGE: Final = 1024

# event reasons
POD_CREATED: Final = "PodCreated"
STEP_STARTED: Final = "StepStarted"
STEP_SUCCEEDED: Final = "StepSucceeded"
STEP_FAILED_EVENT: Final = "StepFailed"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELLED_EVENT: Final = "Cancelled"
RETRYING: Final = "Retrying"
SIDECAR_RESTARTED: Final = "SidecarRestarted"

NO_NATIVE_SIDECARS: Final = (
    "spec.sidecars needs native sidecars (Kubernetes 1.29 or later); this API server is "
    "older: remove the sidecars or run the Task on a newer cluster"
)


class EventSpec(msgspec.Struct, frozen=True):
    type: Literal["Normal", "Warning"]
    reason: str  # CamelCase, e.g. "PodCreated", "StepFailed"
    message: str
    #: what makes this event unique for its Task besides ``reason`` (the engine names the
    #: Event after it, so re-planning the same transition dedupes); None = the message.
    #: Final events use a fixed key: their message may change between two plans (a
    #: timeout's elapsed time) but a Task ends only once.
    key: str | None = None


class Plan(msgspec.Struct, frozen=True):
    create_pod: dict[str, Any] | None = None  # manifest to POST (409 -> adopt if ours)
    #: name of a pod to stop (cancel, timeout, a failure while it still runs, a failed
    #: attempt before the next): its activeDeadlineSeconds is lowered to
    #: status.STOP_DEADLINE, so the kubelet stops it and keeps it (and its logs)
    stop_pod: str | None = None
    status: TaskStatus | None = None  # full new status; None = unchanged, do not patch
    events: tuple[EventSpec, ...] = ()
    requeue_after: float | None = None  # seconds; re-evaluate even without a watch event
    #: delete the Task (its ttlSecondsAfterFinished has passed); its pods go with it
    delete_task: bool = False
    #: nothing else: the pod is due, but these images' ENTRYPOINT/CMD must be read from
    #: their registries first; the engine looks them up and plans again with ``images``
    lookup_images: tuple[str, ...] = ()
    #: ``create_pod`` is this attempt's first: once the pod is in the cache, the sync its
    #: arrival wakes plans these same ``events`` and ``status`` from it, so the engine may
    #: leave them to that sync and let other Tasks' pods be created first (a burst's pods
    #: then wait on one POST each, not on three writes in a row)
    status_waits_for_pod: bool = False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _event(
    type_: Literal["Normal", "Warning"], reason: str, message: str, key: str | None = None
) -> EventSpec:
    return EventSpec(type=type_, reason=reason, message=_cut(message, MAX_EVENT_MESSAGE), key=key)


#: key of the one event that says how a Task ended
FINAL_KEY: Final = "final"


def _missing(task: Task, settings: Settings, images: Images | None) -> tuple[str, ...]:
    return tuple(i for i in lookups_needed(task, settings) if i not in (images or {}))


def plan(
    task: Task,
    pod: Pod | None,
    *,
    now: datetime,
    settings: Settings,
    images: Images | None = None,
) -> Plan:
    """What to do for ``task`` given the pod of its current attempt (None when absent).

    ``images``: the registry's answers to an earlier plan's ``lookup_images``."""
    old = task.status
    if old is not None and old.finished:
        return _after_finish(task, old, pod, now, settings)
    stop = stop_of(task, now, settings)
    if stop is None and (record := _pending_retry(old)) is not None:
        assert old is not None
        return _await_retry(task, old, record, pod, now, settings, images)
    no_pod_yet = pod is None and not (old is not None and old.pod_name)
    if no_pod_yet and not task.spec.cancel:
        # its timeout ended a wait for the pod's name: say so, not just "timed out"
        given_up = gave_up_waiting(task, now=now, settings=settings)
        if given_up is not None:
            return Plan(status=given_up, events=tuple(transition_events(task, old, given_up)))
    create: dict[str, Any] | None = None
    if no_pod_yet and stop is None:
        first = _first_pod(task, now=now, settings=settings, images=images)
        if isinstance(first, Plan):
            return first
        create = first
    ev = evaluate(task, pod, now=now, settings=settings)
    if _retries_left(task, ev.status):
        if pod is not None and not _ended(pod):
            return _stop_before_retry(task, ev.status, pod, now)
        if missing := _missing(task, settings, images):
            return Plan(lookup_images=missing)
        return _retry(task, ev.status, now, settings, images)
    # no pod outlives its Task's outcome: a failure stops it as a cancel does
    ends = stop is not None or (ev.status.finished and ev.status.status != SUCCESSFUL)
    return Plan(
        create_pod=create,
        stop_pod=pod.metadata.name if ends and pod is not None and needs_stop(pod) else None,
        status=None if ev.status == old else ev.status,
        events=tuple(transition_events(task, old, ev.status)),
        requeue_after=ev.requeue_after,
        status_waits_for_pod=create is not None,
    )


def _first_pod(
    task: Task, *, now: datetime, settings: Settings, images: Images | None
) -> dict[str, Any] | Plan:
    """The current attempt's pod to create, or the Plan in its place: look images up first,
    or end the Task because it cannot run (it needs native sidecars, a lookup failed, it
    does not render)."""
    old = task.status
    if task.spec.sidecars and not settings.native_sidecars:
        return _finish(old, invalid_status(task, UNSUPPORTED, NO_NATIVE_SIDECARS, now=now), ())
    if missing := _missing(task, settings, images):
        return Plan(lookup_images=missing)
    try:
        return render_pod(task, settings, current_attempt(old), images)
    except ImageLookupError as e:
        status = invalid_status(task, IMAGE_LOOKUP_FAILED, str(e), now=now)
        return _finish(old, status, ())
    except RenderError as e:
        status = invalid_status(task, INVALID_SPEC, f"the Task cannot run: {e}", now=now)
        return _finish(old, status, ())


def _retries_left(task: Task, status: TaskStatus) -> bool:
    cond = status.condition()
    return (
        status.status == FAILURE
        and cond is not None
        and cond.reason in RETRYABLE_REASONS
        and current_attempt(status) <= task.spec.retries
    )


def _ended(pod: Pod) -> bool:
    """The pod runs nothing any more and never will (a pod being deleted still may: its
    containers get their grace period); one never placed on a node was told never to run."""
    return pod.status.phase in ("Succeeded", "Failed") or not pod.spec.node_name


def _record(failed: TaskStatus) -> AttemptStatus:
    cond = failed.condition()
    return AttemptStatus(
        attempt=current_attempt(failed),
        pod_name=failed.pod_name,
        reason=cond.reason if cond else None,
        message=cond.message if cond else None,
        start_time=failed.start_time,
        completion_time=failed.completion_time,
        steps=failed.steps,
    )


def _pending_retry(old: TaskStatus | None) -> AttemptStatus | None:
    """The current attempt's record when it failed and waits for its pod to stop before the
    next one starts (:func:`_stop_before_retry`)."""
    if old is None or not old.attempts or old.finished:
        return None
    last = old.attempts[-1]
    return last if last.attempt == current_attempt(old) else None


def _retrying(task: Task, record: AttemptStatus) -> EventSpec:
    why = f"{record.reason}: {record.message}" if record.reason else "failed"
    attempt = record.attempt
    return _event(
        "Warning",
        RETRYING,
        f"attempt {attempt} failed ({why}); starting attempt {attempt + 1} of "
        f"{task.spec.retries + 1}",
        f"retry/{attempt + 1}",
    )


def _stop_before_retry(task: Task, failed: TaskStatus, pod: Pod, now: datetime) -> Plan:
    """The attempt failed while its pod still runs (a later container waits, an image never
    pulled): stop the pod and say so; the next attempt starts once it has stopped, so that
    no two attempts ever run at once. The failure is kept as the attempt's record (in
    ``attempts``, while ``attempt`` stays) so that how the pod then stops does not change it."""
    old = task.status
    record = _record(failed)
    started = any(s.state in (STEP_RUNNING, STEP_TERMINATED) for s in failed.steps)
    message = (
        f"attempt {record.attempt} failed ({record.reason}: {record.message}); stopping pod "
        f"{pod.metadata.name} before attempt {record.attempt + 1}"
    )
    prev = old.condition() if old is not None else None
    same = prev is not None and prev.status == "Unknown" and prev.last_transition_time
    ltt = prev.last_transition_time if same and prev is not None else None
    waiting = msgspec.structs.replace(
        failed,
        status=RUNNING if started else PENDING,
        duration=None,
        completion_time=None,
        conditions=[
            Condition(
                type=CONDITION_SUCCEEDED,
                status="Unknown",
                reason=REASON_STOPPING,
                message=_cut(message, MAX_CONDITION_MESSAGE),
                last_transition_time=ltt or format_time(now),
            )
        ],
        attempts=[*failed.attempts, record],
    )
    events = transition_events(task, old, waiting)
    events.append(_retrying(task, record))
    return Plan(
        stop_pod=pod.metadata.name if needs_stop(pod) else None,
        status=None if waiting == old else waiting,
        events=tuple(events),
    )


def _await_retry(
    task: Task,
    old: TaskStatus,
    record: AttemptStatus,
    pod: Pod | None,
    now: datetime,
    settings: Settings,
    images: Images | None,
) -> Plan:
    """The current attempt failed (``record``); start the next once its pod has stopped."""
    if pod is not None and not _ended(pod):
        deadline = deadline_of(task, settings)
        until = (deadline - now).total_seconds() if deadline is not None else None
        return Plan(
            stop_pod=pod.metadata.name if needs_stop(pod) else None,
            requeue_after=until if until is not None and until > 0 else None,
        )
    if missing := _missing(task, settings, images):
        return Plan(lookup_images=missing)
    failed = msgspec.structs.replace(
        old,
        status=FAILURE,
        completion_time=record.completion_time,
        conditions=[
            Condition(
                type=CONDITION_SUCCEEDED,
                status="False",
                reason=record.reason,
                message=record.message,
                last_transition_time=format_time(now),
            )
        ],
        attempts=old.attempts[:-1],
    )
    return _retry(task, failed, now, settings, images)


def _retry(
    task: Task, failed: TaskStatus, now: datetime, settings: Settings, images: Images | None
) -> Plan:
    """The current attempt failed and retries are left: keep it in ``attempts`` and start the
    next one in a new pod (its name is fixed per attempt: no attempt ever runs twice)."""
    old = task.status
    attempt = current_attempt(failed)
    try:
        create = render_pod(task, settings, attempt + 1, images)
    except ImageLookupError as e:  # the lookup worked for an earlier attempt, not now
        return _finish(old, invalid_status(task, IMAGE_LOOKUP_FAILED, str(e), now=now), ())
    record = _record(failed)
    carrier = TaskStatus(
        attempt=attempt + 1,
        attempts=[*failed.attempts, record],
        conditions=old.conditions if old is not None else [],
    )
    nxt = evaluate(
        msgspec.structs.replace(task, status=carrier), None, now=now, settings=settings
    ).status
    # the failed attempt's own step events, then the retry itself (no final Failed event)
    # (after a stop_before_retry these were recorded then: the same keys, so 409s now)
    events = [e for e in transition_events(task, old, failed) if e.key != FINAL_KEY]
    events.append(_retrying(task, record))
    events += transition_events(task, failed, nxt)
    return Plan(
        create_pod=create,
        status=nxt,
        events=tuple(events),
    )


def _after_finish(
    task: Task, old: TaskStatus, pod: Pod | None, now: datetime, settings: Settings
) -> Plan:
    """A finished Task never changes; it is only deleted once its TTL has passed. Its pod
    is stopped if it still runs (the stop of the final plan did not take)."""
    plan = _ttl_plan(task, old, now, settings)
    if pod is not None and old.status != SUCCESSFUL and needs_stop(pod) and not plan.delete_task:
        plan = msgspec.structs.replace(plan, stop_pod=pod.metadata.name)
    return plan


def _ttl_plan(task: Task, old: TaskStatus, now: datetime, settings: Settings) -> Plan:
    ttl = task.spec.ttl_seconds_after_finished
    if ttl is None:
        if settings.default_ttl_after_finished is None:
            return Plan()
        ttl = int(settings.default_ttl_after_finished)
    cond = old.condition()
    ended = old.completion_time or (cond.last_transition_time if cond else None)
    if ended is None:  # a status written by hand: count from now on
        return Plan(requeue_after=float(ttl))
    left = (parse_time(ended) - now).total_seconds() + ttl
    return Plan(delete_task=True) if left <= 0 else Plan(requeue_after=left)


def _finish(old: TaskStatus | None, status: TaskStatus, events: tuple[EventSpec, ...]) -> Plan:
    cond = status.condition()
    final = _event("Warning", FAILED, f"{cond.reason}: {cond.message}", FINAL_KEY) if cond else None
    return Plan(status=status, events=events + ((final,) if final else ()))


def rejected(task: Task, message: str, *, now: datetime) -> Plan:
    """The API server rejected the pod at create (422/400): ``Failure/InvalidPodSpec``."""
    if task.status is not None and task.status.finished:
        return Plan()
    status = invalid_status(
        task, INVALID_POD_SPEC, f"the API server rejected the pod: {message.strip()}", now=now
    )
    return _finish(task.status, status, ())


def name_taken(
    task: Task, holder: Pod, *, going_away: bool, now: datetime, settings: Settings
) -> Plan:
    """The pod's name is held by ``holder``, a pod that is not this Task's (409 on create;
    ``going_away``: it is being deleted, or its Task is gone). The Task waits ``Pending``
    (reason ``WaitingForOldPod`` / ``PodNameTaken``, a Warning event the first time) and
    tries again after ``requeue_after``; past its timeout (or a cap) it ends ``Failure`` with
    that reason (see status/_name_wait.py)."""
    old = task.status
    if old is not None and old.finished:
        return Plan()
    ev = name_wait_status(task, holder, going_away=going_away, now=now, settings=settings)
    return Plan(
        status=None if ev.status == old else ev.status,
        events=tuple(transition_events(task, old, ev.status)),
        requeue_after=None if ev.status.finished else ev.requeue_after,
    )


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


def _retry_events(task: Task, i: int, s: StepStatus, attempt: int) -> list[EventSpec]:
    """One ``Retrying`` event per retry of step ``s`` (the ``i``-th) in the Task's attempt
    ``attempt``. The agent cannot reach the API server: they come with the step's state,
    when its container has ended, before its StepSucceeded or StepFailed."""
    if s.attempts is None or s.attempts < 2:
        return []
    steps = task.spec.steps
    retries = steps[i].retries if i < len(steps) and steps[i].name == s.name else 0
    most = max(retries + 1, s.attempts)
    of_task = f" (Task attempt {attempt})" if attempt > 1 else ""
    out = []
    for k in range(2, s.attempts + 1):
        codes = s.retried_exit_codes
        after = f" after exit code {codes[k - 2]}" if k - 2 < len(codes) else ""
        out.append(
            _event(
                "Normal",
                RETRYING,
                f"step {s.name} attempt {k} of {most}{after}{of_task}",
                f"step/{attempt}/{s.name}/{k}",
            )
        )
    return out


def transition_events(task: Task, old: TaskStatus | None, new: TaskStatus) -> list[EventSpec]:
    """Events telling what changed from ``old`` to ``new`` (nothing when nothing did).

    Every event is derived from the two statuses alone, so a reconcile that could not record
    its events (and therefore did not write ``new``) plans the same ones again.
    """
    out: list[EventSpec] = []
    if new.pod_name and new.pod_name != (old.pod_name if old is not None else None):
        out.append(_event("Normal", POD_CREATED, f"Created pod {new.pod_name}"))
    before = {s.name: s for s in old.steps} if old is not None else {}
    n = len(new.steps)
    # a retry repeats every step: the attempt keeps its events apart from the earlier ones
    attempt = current_attempt(new)
    of_attempt = f", attempt {attempt}" if attempt > 1 else ""
    for i, s in enumerate(new.steps):
        prev = before.get(s.name)
        label = f"step {s.name} ({i + 1}/{n}{of_attempt})"
        if _started(s) and not _started(prev) and s.started_at:
            out.append(_event("Normal", STEP_STARTED, f"Started {label}"))
        was_done = prev is not None and prev.state == STEP_TERMINATED
        if s.state == STEP_TERMINATED and not was_done and s.exit_code is not None:
            out += _retry_events(task, i, s, attempt)
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
    out += _sidecar_restarts(old, new, of_attempt)
    new_cond = new.condition()
    old_cond = old.condition() if old is not None else None
    if new.status == SUCCESSFUL and (old is None or old.status != SUCCESSFUL):
        took = f" in {new.duration}" if new.duration else ""
        out.append(_event("Normal", SUCCEEDED, f"All {n} steps succeeded{took}", FINAL_KEY))
    elif new.status == CANCELLED and (old is None or old.status != CANCELLED):
        message = new_cond.message if new_cond is not None else "cancelled"
        out.append(_event("Warning", CANCELLED_EVENT, message or "cancelled", FINAL_KEY))
    elif new.status == FAILURE and (old is None or old.status != FAILURE):
        if new_cond is not None:
            out.append(
                _event("Warning", FAILED, f"{new_cond.reason}: {new_cond.message}", FINAL_KEY)
            )
    elif (
        new_cond is not None
        and new_cond.reason in PROBLEM_REASONS
        and (old_cond is None or old_cond.reason != new_cond.reason)
    ):
        out.append(_event("Warning", new_cond.reason or "", new_cond.message or ""))
    return out


def _sidecar_restarts(old: TaskStatus | None, new: TaskStatus, of_attempt: str) -> list[EventSpec]:
    """One Warning per sidecar whose restart count grew since ``old`` (counted from 0 on a
    new pod). Keyed by the count, so each restart seen is told once however often planned."""
    same_pod = old is not None and old.pod_name == new.pod_name
    before = {c.name: c.restarts for c in old.sidecars} if old is not None and same_pod else {}
    out = []
    for c in new.sidecars:
        if c.restarts <= before.get(c.name, 0):
            continue
        times = "once" if c.restarts == 1 else f"{c.restarts} times"
        out.append(
            _event(
                "Warning",
                SIDECAR_RESTARTED,
                f"sidecar {c.name} was restarted ({times} so far{of_attempt}); the steps go on",
                f"{current_attempt(new)}/{c.name}/{c.restarts}",
            )
        )
    return out
