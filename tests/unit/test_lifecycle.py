"""Cancel, timeout, retries and TTL in the pure core: plan() tables for each transition."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from taskflow.api import Pod, Task, TaskStatus, decode_pod, decode_task
from taskflow.api.crd import build_crd
from taskflow.labels import ATTEMPT_LABEL
from taskflow.reconcile import Plan, plan, rejected
from taskflow.render import render_pod
from taskflow.settings import Settings
from taskflow.status import NEVER_RETRIED, RETRYABLE_REASONS
from tests.unit.builders import (
    ABC,
    SETTINGS,
    at,
    pod,
    running,
    step,
    task_dict,
    terminated,
    ts,
    waiting,
)

KILLED = 143  # SIGTERM


def make(*, status: TaskStatus | None = None, **spec: Any) -> Task:
    raw = msgspec.to_builtins(status) if status is not None else None
    return decode_task(task_dict(*(step(n) for n in ABC), status=raw, **spec))


def advance(t: Task, p: Plan) -> Task:
    """The Task as the next reconcile sees it after ``p``'s status was written."""
    return make(status=p.status or t.status, **msgspec.to_builtins(t.spec))


def cond(p: Plan) -> tuple[str | None, str | None, str]:
    assert p.status is not None
    c = p.status.condition()
    assert c is not None
    return p.status.status, c.reason, c.message or ""


def reasons(p: Plan) -> list[str]:
    return [e.reason for e in p.events]


A_RUNNING = ([running("a", 2), waiting("b", "PodInitializing")], [waiting("c", "PodInitializing")])


# -- cancel -------------------------------------------------------------------------------


def test_cancel_before_the_pod_exists_never_creates_one() -> None:
    p = plan(make(cancel=True), None, now=at(0), settings=SETTINGS)
    assert p.create_pod is None
    assert p.stop_pod is None
    assert cond(p)[:2] == ("Cancelled", "Cancelled")
    assert p.status is not None
    assert p.status.condition() is not None
    assert p.status.conditions[0].status == "False"
    assert [s.state for s in p.status.steps] == ["NotRun"] * 3
    assert reasons(p) == ["Cancelled"]


def test_cancel_while_running_stops_the_pod_then_ends_cancelled() -> None:
    t = make()
    t = advance(t, plan(t, pod(t, *A_RUNNING), now=at(3), settings=SETTINGS))
    t = make(status=t.status, cancel=True)
    # 1. the pod is told to stop; the Task says so and is not final yet
    p1 = plan(t, pod(t, *A_RUNNING), now=at(4), settings=SETTINGS)
    assert p1.stop_pod == "demo-pod"
    word, reason, message = cond(p1)
    assert (word, reason) == ("Running", "Stopping")
    assert "cancelled" in message
    assert "step a (1/3) is running" in message
    assert reasons(p1) == []
    t = advance(t, p1)
    # 2. the kubelet has not acted yet: nothing new to do (the pod already has the deadline)
    told = pod(t, *A_RUNNING, deadline=1)
    assert plan(t, told, now=at(5), settings=SETTINGS) == Plan()
    # 3. the kubelet stopped the running step; the later ones never started
    stopped = pod(
        t,
        [terminated("a", KILLED, 2, 6), waiting("b", "PodInitializing")],
        [waiting("c", "PodInitializing")],
        phase="Failed",
        reason="DeadlineExceeded",
        deadline=1,
    )
    p3 = plan(t, stopped, now=at(7), settings=SETTINGS)
    assert p3.stop_pod is None
    word, reason, message = cond(p3)
    assert (word, reason) == ("Cancelled", "Cancelled")
    assert "step a (1/3) was running" in message
    assert p3.status is not None
    assert [(s.state, s.exit_code) for s in p3.status.steps] == [
        ("Terminated", KILLED),
        ("NotRun", None),
        ("NotRun", None),
    ]
    assert reasons(p3) == ["StepFailed", "Cancelled"]
    # 4. final: nothing ever changes again
    assert plan(advance(t, p3), stopped, now=at(99), settings=SETTINGS) == Plan()


def test_cancel_of_an_unscheduled_pod_ends_at_once_and_disarms_the_pod() -> None:
    t = make(cancel=True)
    p = plan(t, pod(t, start=None, node=None), now=at(1), settings=SETTINGS)
    assert p.stop_pod == "demo-pod"  # should it ever be scheduled, it stops within 1 s
    assert cond(p)[:2] == ("Cancelled", "Cancelled")


def test_cancel_after_the_pod_succeeded_keeps_the_success() -> None:
    t = make(cancel=True)
    done = pod(
        t,
        [terminated("a", 0, 1, 2), terminated("b", 0, 2, 3)],
        [terminated("c", 0, 3, 4)],
        phase="Succeeded",
    )
    p = plan(t, done, now=at(5), settings=SETTINGS)
    assert cond(p)[:2] == ("Successful", "Succeeded")
    assert p.stop_pod is None


def test_cancel_of_a_finished_task_changes_nothing() -> None:
    t = make()
    failed = pod(
        t,
        [terminated("a", 1, 1, 2), waiting("b", "PodInitializing")],
        [waiting("c", "PodInitializing")],
        phase="Failed",
    )
    t = make(status=plan(t, failed, now=at(3), settings=SETTINGS).status, cancel=True)
    assert plan(t, failed, now=at(4), settings=SETTINGS) == Plan()


def test_a_cancelled_task_is_never_retried() -> None:
    t = make(cancel=True, retries=3)
    p = plan(t, None, now=at(0), settings=SETTINGS)
    assert p.create_pod is None
    assert cond(p)[0] == "Cancelled"


# -- timeout ------------------------------------------------------------------------------


def test_timeout_requeues_for_its_deadline() -> None:
    t = make(timeout="1m")  # created at ts(-10): the deadline is at(50)
    p = plan(t, None, now=at(0), settings=SETTINGS)
    assert p.create_pod is not None
    assert p.requeue_after == pytest.approx(50)


def test_default_timeout_applies_without_spec_timeout() -> None:
    settings = Settings(default_timeout=3600, default_executor="kubelet")
    p = plan(make(), None, now=at(0), settings=settings)
    assert p.requeue_after == pytest.approx(3590)
    assert plan(make(), None, now=at(0), settings=SETTINGS).requeue_after is None


def test_timeout_while_unschedulable_fails_at_once_saying_what_it_waited_for() -> None:
    unsched = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
        }
    ]
    t = make(timeout="30s")
    p = plan(t, pod(t, start=None, node=None, conditions=unsched), now=at(21), settings=SETTINGS)
    word, reason, message = cond(p)
    assert (word, reason) == ("Failure", "TimedOut")
    assert "did not finish within 30s (spec.timeout)" in message
    assert "Insufficient cpu" in message
    assert p.stop_pod == "demo-pod"
    assert reasons(p) == ["PodCreated", "Failed"]


def test_timeout_while_running_stops_the_step_and_names_it() -> None:
    t = make(timeout="20s")
    b_running = pod(
        t,
        [terminated("a", 0, 1, 2), running("b", 3)],
        [waiting("c", "PodInitializing")],
    )
    t = advance(t, plan(t, b_running, now=at(4), settings=SETTINGS))
    p1 = plan(t, b_running, now=at(10), settings=SETTINGS)
    assert p1.stop_pod == "demo-pod"
    assert cond(p1)[:2] == ("Running", "Stopping")
    assert p1.requeue_after is None  # no busy loop past the deadline
    t = advance(t, p1)
    stopped = pod(
        t,
        [terminated("a", 0, 1, 2), terminated("b", KILLED, 3, 11)],
        [waiting("c", "PodInitializing")],
        phase="Failed",
        reason="DeadlineExceeded",
        deadline=1,
    )
    p2 = plan(t, stopped, now=at(12), settings=SETTINGS)
    word, reason, message = cond(p2)
    assert (word, reason) == ("Failure", "TimedOut")
    assert "step b (2/3) was running" in message


def test_timed_out_without_pod_fails_at_once() -> None:
    t = make(timeout="5s")
    p = plan(t, None, now=at(0), settings=SETTINGS)  # 10 s after creation
    assert p.create_pod is None
    word, reason, message = cond(p)
    assert (word, reason) == ("Failure", "TimedOut")
    assert "no pod was created" in message


# -- retries ------------------------------------------------------------------------------


def _failed_pod(t: Task, attempt: int) -> Any:
    return pod(
        t,
        [terminated("a", 0, 1, 2), terminated("b", 7, 2, 3)],
        [waiting("c", "PodInitializing")],
        phase="Failed",
        attempt=attempt,
    )


def test_a_failed_attempt_starts_the_next_in_a_new_pod() -> None:
    t = make(retries=2)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    p = plan(t, _failed_pod(t, 1), now=at(4), settings=SETTINGS)
    assert p.create_pod is not None
    assert p.create_pod["metadata"]["name"] == "demo-pod-2"
    assert p.create_pod["metadata"]["labels"][ATTEMPT_LABEL] == "2"
    assert p.status is not None
    assert (p.status.status, p.status.attempt, p.status.pod_name) == ("Pending", 2, "demo-pod-2")
    assert [s.state for s in p.status.steps] == ["Waiting"] * 3
    [first] = p.status.attempts
    assert (first.attempt, first.pod_name, first.reason) == (1, "demo-pod", "StepFailed")
    assert [s.exit_code for s in first.steps] == [0, 7, None]
    assert "Failed" not in reasons(p)
    assert reasons(p)[-2:] == ["Retrying", "PodCreated"]
    retrying = next(e for e in p.events if e.reason == "Retrying")
    assert "attempt 1 failed (StepFailed" in retrying.message
    assert "starting attempt 2 of 3" in retrying.message
    # planned again from the old status, the next attempt's pod would be made once more
    assert not p.status_waits_for_pod


@pytest.mark.parametrize("executor", ["kubelet", "agent"])
def test_a_first_create_plans_the_same_events_and_status_once_its_pod_is_cached(
    executor: str,
) -> None:
    t = decode_task(task_dict(*(step(n, command=["true"]) for n in ABC), executor=executor))
    first = plan(t, None, now=at(0), settings=SETTINGS)
    assert first.create_pod is not None
    assert first.status_waits_for_pod
    meta = {**first.create_pod["metadata"], "uid": "pod-uid", "resourceVersion": "1"}
    created = decode_pod({**first.create_pod, "metadata": meta})
    again = plan(t, created, now=at(0), settings=SETTINGS)
    assert again.create_pod is None
    assert not again.status_waits_for_pod
    assert again.events == first.events  # so the engine may leave both to that sync
    assert first.status is not None
    assert again.status is not None
    fields = ("status", "pod_name", "attempt", "steps", "start_time")
    assert [getattr(again.status, f) for f in fields] == [getattr(first.status, f) for f in fields]
    assert cond(again)[:2] == cond(first)[:2]  # Pending/Pending; the message says what it waits on


def test_attempts_keep_their_events_apart() -> None:
    t = make(retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    first = plan(t, _failed_pod(t, 1), now=at(4), settings=SETTINGS)
    t = advance(t, first)
    second = plan(t, _failed_pod(t, 2), now=at(9), settings=SETTINGS)
    keys_1 = {(e.reason, e.key or e.message) for e in first.events}
    keys_2 = {(e.reason, e.key or e.message) for e in second.events}
    assert ("StepFailed", "step b (2/3, attempt 2) failed with exit code 7") in keys_2
    assert not keys_1 & keys_2


def test_the_last_attempt_fails_the_task_with_every_attempt_kept() -> None:
    t = make(retries=2)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    for attempt in (1, 2):
        t = advance(t, plan(t, _failed_pod(t, attempt), now=at(4 * attempt), settings=SETTINGS))
    p = plan(t, _failed_pod(t, 3), now=at(20), settings=SETTINGS)
    assert p.create_pod is None
    assert cond(p)[:2] == ("Failure", "StepFailed")
    assert p.status is not None
    assert p.status.attempt == 3
    assert [(a.attempt, a.pod_name) for a in p.status.attempts] == [
        (1, "demo-pod"),
        (2, "demo-pod-2"),
    ]
    assert reasons(p)[-1] == "Failed"


def test_a_deleted_pod_is_retried() -> None:
    t = make(retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    p = plan(t, None, now=at(5), settings=SETTINGS)  # podName set, the pod is gone
    assert p.create_pod is not None
    assert p.status is not None
    assert p.status.attempts[0].reason == "PodDeleted"


def test_a_pod_that_ended_without_reporting_its_steps_is_retried() -> None:
    t = make(retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    p = plan(t, pod(t, phase="Succeeded"), now=at(5), settings=SETTINGS)
    assert p.create_pod is not None
    assert p.create_pod["metadata"]["name"] == "demo-pod-2"
    assert p.status is not None
    (first,) = p.status.attempts
    assert first.reason == "PodFailed"
    assert "reported no result for step a (1/3)" in (first.message or "")
    assert "Retrying" in reasons(p)


def test_no_retry_for_a_timeout_or_a_rejected_pod() -> None:
    t = make(retries=3, timeout="5s")
    assert plan(t, None, now=at(0), settings=SETTINGS).create_pod is None
    r = rejected(make(retries=3), "spec.containers[0].image: Required value", now=at(0))
    assert r.create_pod is None
    assert cond(r)[:2] == ("Failure", "InvalidPodSpec")


def test_the_pod_of_the_current_attempt_is_the_one_that_counts() -> None:
    t = make(retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    t = advance(t, plan(t, _failed_pod(t, 1), now=at(4), settings=SETTINGS))
    ok = pod(
        t,
        [terminated("a", 0, 5, 6), terminated("b", 0, 6, 7)],
        [terminated("c", 0, 7, 8)],
        phase="Succeeded",
        attempt=2,
    )
    p = plan(t, ok, now=at(9), settings=SETTINGS)
    assert cond(p)[:2] == ("Successful", "Succeeded")
    assert p.status is not None
    assert p.status.start_time == ts(5)  # this attempt's own times
    assert len(p.status.attempts) == 1


# -- TTL ----------------------------------------------------------------------------------


def _finished(**spec: Any) -> Task:
    t = make(**spec)
    done = pod(
        t,
        [terminated("a", 0, 1, 2), terminated("b", 0, 2, 3)],
        [terminated("c", 0, 3, 4)],
        phase="Succeeded",
    )
    return advance(t, plan(t, done, now=at(5), settings=SETTINGS))


def test_ttl_deletes_a_finished_task_when_due() -> None:
    t = _finished(ttlSecondsAfterFinished=60)  # finished at(4)
    assert plan(t, None, now=at(34), settings=SETTINGS) == Plan(requeue_after=30)
    assert plan(t, None, now=at(64), settings=SETTINGS) == Plan(delete_task=True)
    # expired long ago (the operator was down): deleted at once
    assert plan(t, None, now=at(9999), settings=SETTINGS) == Plan(delete_task=True)


def test_without_ttl_a_finished_task_stays() -> None:
    assert plan(_finished(), None, now=at(9999), settings=SETTINGS) == Plan()


def test_default_ttl_applies_and_spec_zero_means_at_once() -> None:
    settings = Settings(default_ttl_after_finished=3600, default_timeout=0)
    assert plan(_finished(), None, now=at(4), settings=settings) == Plan(requeue_after=3600)
    zero = _finished(ttlSecondsAfterFinished=0)
    assert plan(zero, None, now=at(4), settings=settings) == Plan(delete_task=True)


# -- no pod outlives its Task's outcome ------------------------------------------------------

AGENT = Settings(default_executor="agent", default_timeout=0)
INSTALLED = terminated("taskflow-install", 0, 0, 0.5)


def _state(name: str, code: int = 0, error: str | None = None, abort: bool | None = None) -> str:
    failed = code != 0 or error is not None
    return json.dumps(
        {
            "v": 1,
            "name": name,
            "exitCode": code,
            "startedAt": "2024-01-06T22:19:25.000Z",
            "finishedAt": "2024-01-06T22:19:26.000Z",
            "skipped": False,
            "timedOut": False,
            "abort": failed if abort is None else abort,
            "error": error,
            "results": [],
        },
        separators=(",", ":"),
    )


def _agent_pod(t: Task, mains: list[Any], *, phase: str = "Running", **kw: Any) -> Pod:
    rendered = render_pod(t, AGENT)
    obj = {
        **rendered,
        "metadata": {**rendered["metadata"], "uid": "pod-uid", "creationTimestamp": ts(-1)},
        "status": {
            "phase": phase,
            "startTime": ts(0),
            "initContainerStatuses": [kw.get("install", INSTALLED)],
            "containerStatuses": mains,
        },
    }
    obj["spec"]["nodeName"] = "node-1"
    if "deadline" in kw:
        obj["spec"]["activeDeadlineSeconds"] = kw["deadline"]
    return decode_pod(obj)


def _agent_task(**spec: Any) -> Task:
    return decode_task(task_dict(*(step(n, command=["x"]) for n in ABC), executor="agent", **spec))


def _done(name: str, code: int, message: str | None, reason: str | None = None) -> Any:
    return terminated(name, code, 1, 2, reason=reason, message=message)


FAILED_B_KUBELET = (
    [terminated("a", 0, 1, 2), terminated("b", 7, 2, 3)],
    [waiting("c", "PodInitializing")],
)
AGENT_B_FAILED = "agent: a step failed, later agents still run"
#: containerd's pull error for a tag the registry does not have (404 -> gRPC NotFound)
NOT_FOUND = (
    "rpc error: code = NotFound desc = failed to pull and unpack image "
    '"docker.io/library/busybox:0.0": failed to resolve reference '
    '"docker.io/library/busybox:0.0": docker.io/library/busybox:0.0: not found'
)
STOPS = {
    "kubelet: a step failed, the pod's phase lags": ("kubelet", FAILED_B_KUBELET, "StepFailed"),
    "kubelet: an image that cannot be pulled": (
        "kubelet",
        ([terminated("a", 0, 1, 2), waiting("b", "InvalidImageName")], [waiting("c")]),
        "ImagePullFailed",
    ),
    "kubelet: an image the registry does not have": (
        "kubelet",
        ([terminated("a", 0, 1, 2), waiting("b", "ErrImagePull", NOT_FOUND)], [waiting("c")]),
        "ImagePullFailed",
    ),
    AGENT_B_FAILED: (
        "agent",
        [_done("a", 0, _state("a")), _done("b", 7, _state("b", 7)), running("c", 0.6)],
        "StepFailed",
    ),
    "agent: a later image never pulls": (
        "agent",
        [_done("a", 0, _state("a")), waiting("b", "InvalidImageName"), running("c", 0.6)],
        "ImagePullFailed",
    ),
    "agent: a later image the registry does not have": (
        "agent",
        [
            _done("a", 0, _state("a")),
            waiting("b", "ImagePullBackOff", NOT_FOUND),
            running("c", 0.6),
        ],
        "ImagePullFailed",
    ),
    "agent: an agent died without a state": (
        "agent",
        [_done("a", 137, None, "Error"), running("b", 0.6), running("c", 0.6)],
        "AgentDied",
    ),
    "agent: a state that disagrees with the kubelet": (
        "agent",
        [_done("a", 3, _state("a", 0)), running("b", 0.6), running("c", 0.6)],
        "StepStateMismatch",
    ),
    "agent: results too large": (
        "agent",
        [
            _done("a", 1, _state("a", 1, "results are 5000 bytes; a step's results must fit in")),
            running("b", 0.6),
            running("c", 0.6),
        ],
        "ResultsTooLarge",
    ),
}


def _pod_of(executor: str, t: Task, statuses: Any, **kw: Any) -> Pod:
    if executor == "agent":
        return _agent_pod(t, statuses, **kw)
    init, main = statuses
    return pod(t, init, main, phase=kw.get("phase", "Running"), deadline=kw.get("deadline"))


def _task_for(executor: str, **spec: Any) -> Task:
    return _agent_task(**spec) if executor == "agent" else make(**spec)


@pytest.mark.parametrize("case", list(STOPS))
def test_a_final_failure_stops_a_pod_that_still_runs(case: str) -> None:
    executor, statuses, reason = STOPS[case]
    t = _task_for(executor)
    p = plan(t, _pod_of(executor, t, statuses), now=at(5), settings=SETTINGS)
    assert cond(p)[:2] == ("Failure", reason)
    assert p.stop_pod == "demo-pod"
    final = p.events[-1]  # one Event per transition, the new reasons' too
    assert (final.reason, final.key) == ("Failed", "final")
    assert final.message.startswith(f"{reason}: ")
    # once stopped (or terminal) it is not asked again
    stopped = _pod_of(executor, t, statuses, deadline=1)
    assert plan(t, stopped, now=at(5), settings=SETTINGS).stop_pod is None
    ended = _pod_of(executor, t, statuses, phase="Failed")
    assert plan(t, ended, now=at(5), settings=SETTINGS).stop_pod is None


def test_an_agent_image_the_registry_does_not_have_stops_the_pod_at_once() -> None:
    t = _agent_task()
    missing = waiting("taskflow-install", "ErrImagePull", NOT_FOUND)
    p = _agent_pod(
        t, [waiting(n, "PodInitializing") for n in ABC], phase="Pending", install=missing
    )
    planned = plan(t, p, now=at(5), settings=SETTINGS)
    assert cond(planned) == (
        "Failure",
        "AgentInstallFailed",
        "step a (1/3): the registry has no image 'docker.io/library/busybox:0.0' (or hides it "
        "without credentials: see imagePullSecrets)",
    )
    assert planned.stop_pod == "demo-pod"


def test_a_success_never_stops_its_pod() -> None:
    t = make()
    ok = pod(t, [terminated("a", 0, 1, 2), terminated("b", 0, 2, 3)], [terminated("c", 0, 3, 4)])
    p = plan(t, ok, now=at(5), settings=SETTINGS)  # the pod's phase still says Running
    assert cond(p)[:2] == ("Successful", "Succeeded")
    assert p.stop_pod is None
    assert plan(advance(t, p), ok, now=at(6), settings=SETTINGS).stop_pod is None


def test_a_finished_task_whose_pod_still_runs_stops_it_again() -> None:
    t = make()
    failing = pod(t, *FAILED_B_KUBELET)
    t = advance(t, plan(t, failing, now=at(5), settings=SETTINGS))
    assert t.status is not None
    assert t.status.finished
    assert plan(t, failing, now=at(6), settings=SETTINGS) == Plan(stop_pod="demo-pod")
    assert plan(t, pod(t, *FAILED_B_KUBELET, deadline=1), now=at(6), settings=SETTINGS) == Plan()
    assert plan(t, pod(t, *FAILED_B_KUBELET, phase="Failed"), now=at(6), settings=SETTINGS) == (
        Plan()
    )


@pytest.mark.parametrize("executor", ["kubelet", "agent"])
def test_a_retry_starts_only_once_the_failed_attempts_pod_has_stopped(executor: str) -> None:
    statuses = FAILED_B_KUBELET if executor == "kubelet" else STOPS[AGENT_B_FAILED][1]
    t = _task_for(executor, retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=AGENT if executor == "agent" else SETTINGS))
    first = plan(t, _pod_of(executor, t, statuses), now=at(5), settings=SETTINGS)
    assert first.create_pod is None  # not while attempt 1 still runs
    assert first.stop_pod == "demo-pod"
    assert cond(first)[:2] == ("Running", "Stopping")
    assert "attempt 1 failed (StepFailed: step b (2/3) failed with exit code 7)" in cond(first)[2]
    assert first.status is not None
    assert first.status.attempt == 1
    assert [(a.attempt, a.reason) for a in first.status.attempts] == [(1, "StepFailed")]
    assert "Retrying" in reasons(first)
    assert "Failed" not in reasons(first)
    t = advance(t, first)
    # stopping: nothing new until the pod has stopped
    stopping = _pod_of(executor, t, statuses, deadline=1)
    assert plan(t, stopping, now=at(6), settings=SETTINGS) == Plan()
    # the kubelet stopped it (DeadlineExceeded): attempt 1 is still the step's failure
    stopped = pod(t, *FAILED_B_KUBELET, phase="Failed", reason="DeadlineExceeded", deadline=1)
    if executor == "agent":
        stopped = _pod_of(executor, t, statuses, phase="Failed", deadline=1)
    second = plan(t, stopped, now=at(8), settings=SETTINGS)
    assert second.create_pod is not None
    assert second.create_pod["metadata"]["name"] == "demo-pod-2"
    assert second.status is not None
    assert (second.status.status, second.status.attempt) == ("Pending", 2)
    [record] = second.status.attempts
    assert (record.attempt, record.reason) == (1, "StepFailed")
    assert reasons(second)[-2:] == ["Retrying", "PodCreated"]
    keys = {(e.reason, e.key) for e in first.events} & {(e.reason, e.key) for e in second.events}
    assert keys == {("Retrying", "retry/2")}  # the same Event: recorded once


def test_a_cancel_while_the_failed_attempt_stops_ends_the_task() -> None:
    t = make(retries=1)
    t = advance(t, plan(t, None, now=at(0), settings=SETTINGS))
    t = advance(t, plan(t, pod(t, *FAILED_B_KUBELET), now=at(5), settings=SETTINGS))
    cancelled = make(retries=1, cancel=True, status=t.status)
    p = plan(
        cancelled,
        pod(t, *FAILED_B_KUBELET, phase="Failed", deadline=1),
        now=at(7),
        settings=SETTINGS,
    )
    assert p.create_pod is None
    assert cond(p)[:2] == ("Cancelled", "Cancelled")
    assert p.status is not None
    assert p.status.attempts == []


def test_an_install_failure_is_not_retried() -> None:
    t = _agent_task(retries=2)
    install = terminated(
        "taskflow-install", 128, 0, 0.1, reason="StartError", message="exec format error"
    )
    p = plan(
        t,
        _agent_pod(
            t, [waiting(n, "PodInitializing") for n in ABC], phase="Failed", install=install
        ),
        now=at(5),
        settings=SETTINGS,
    )
    assert p.create_pod is None
    assert cond(p)[:2] == ("Failure", "AgentInstallFailed")


def test_the_crd_names_every_reason_that_is_never_retried() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    description = schema["properties"]["spec"]["properties"]["retries"]["description"]
    never = description.split("Never after")[1]
    for reason in (*NEVER_RETRIED, "TimedOut", "Cancelled"):
        assert reason in never
    assert not [r for r in RETRYABLE_REASONS if r in never]
