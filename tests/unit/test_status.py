"""status.compute_status / evaluate: every kubelet state, table-driven, no cluster."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from taskflow.api import TaskStatus, decode_task
from taskflow.api.task_status import Condition, StepStatus
from taskflow.settings import Settings
from taskflow.status import (
    compute_status,
    evaluate,
    format_duration,
    format_start_at,
    format_time,
    parse_time,
)
from tests.unit.builders import (
    ABC,
    SETTINGS,
    T0,
    at,
    pod,
    pod_dict,
    running,
    step,
    steps_task,
    task,
    task_dict,
    terminated,
    ts,
    waiting,
)


@dataclass
class Case:
    id: str
    init: list[Any] | None = None
    main: list[Any] | None = None
    pod_kw: dict[str, Any] = field(default_factory=dict)
    now: float = 100
    # expectations
    status: str = "Running"
    reason: str | None = None
    progress: str | None = None
    states: list[str] | None = None
    message_has: tuple[str, ...] = ()
    start_at: str | bool | None = True  # True = don't check
    duration: str | bool | None = True
    completion: str | bool | None = True
    requeue: float | bool | None = None
    names: tuple[str, ...] = ABC
    spec: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "created-no-statuses",
        pod_kw={"start": None},
        status="Pending",
        reason="Pending",
        progress="0/3",
        states=["Waiting"] * 3,
        start_at=None,
    ),
    Case(
        "first-container-creating",
        init=[waiting("a"), waiting("b", "PodInitializing")],
        main=[waiting("c", "PodInitializing")],
        status="Pending",
        reason="Pending",
        progress="0/3",
        states=["Waiting"] * 3,
        message_has=("step a (1/3)", "ContainerCreating"),
        start_at=None,
        duration=None,
    ),
    Case(
        "first-running",
        init=[running("a", 5), waiting("b", "PodInitializing")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Pending"},
        status="Running",
        reason="Running",
        progress="1/3",
        states=["Running", "Waiting", "Waiting"],
        message_has=("step a (1/3) is running",),
        start_at="2024-01-06 22:19:29",
        duration=None,
        completion=None,
    ),
    Case(
        "second-running",
        init=[terminated("a", 0, 5, 8), running("b", 9)],
        main=[waiting("c", "PodInitializing")],
        status="Running",
        progress="2/3",
        states=["Terminated", "Running", "Waiting"],
        message_has=("step b (2/3) is running",),
        start_at="2024-01-06 22:19:29",
        duration=None,
    ),
    Case(
        "last-starting",
        init=[terminated("a", 0, 5, 8), terminated("b", 0, 9, 12)],
        main=[waiting("c", "ContainerCreating")],
        pod_kw={"phase": "Running"},
        status="Running",
        progress="2/3",
        states=["Terminated", "Terminated", "Waiting"],
        message_has=("step c (3/3) is starting (ContainerCreating)",),
    ),
    Case(
        "all-succeeded",
        init=[terminated("a", 0, 5, 8), terminated("b", 0, 9, 12)],
        main=[terminated("c", 0, 13, 36)],
        pod_kw={"phase": "Succeeded"},
        status="Successful",
        reason="Succeeded",
        progress="3/3",
        states=["Terminated"] * 3,
        message_has=("all 3 steps succeeded",),
        start_at="2024-01-06 22:19:29",
        duration="31s",
        completion=ts(36),
    ),
    Case(
        "all-succeeded-phase-not-yet-updated",
        init=[terminated("a", 0, 5, 8), terminated("b", 0, 9, 12)],
        main=[terminated("c", 0, 13, 70)],
        pod_kw={"phase": "Running"},
        status="Successful",
        duration="1m5s",
    ),
    Case(
        "middle-step-fails",
        init=[terminated("a", 0, 5, 8), terminated("b", 1, 9, 11, message="boom\n")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed"},
        status="Failure",
        reason="StepFailed",
        progress="2/3",
        states=["Terminated", "Terminated", "NotRun"],
        message_has=("step b (2/3) failed with exit code 1", "boom"),
        duration="6s",
        completion=ts(11),
    ),
    Case(
        "middle-step-fails-phase-not-yet-updated",
        init=[terminated("a", 0, 5, 8), terminated("b", 3, 9, 11)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Pending"},
        status="Failure",
        reason="StepFailed",
        states=["Terminated", "Terminated", "NotRun"],
        message_has=("exit code 3",),
    ),
    Case(
        "last-step-fails",
        init=[terminated("a", 0, 5, 8), terminated("b", 0, 9, 11)],
        main=[terminated("c", 2, 12, 20)],
        pod_kw={"phase": "Failed"},
        status="Failure",
        reason="StepFailed",
        progress="3/3",
        message_has=("step c (3/3) failed with exit code 2",),
        duration="15s",
    ),
    Case(
        "first-step-fails",
        init=[terminated("a", 127, 5, 6), waiting("b", "PodInitializing")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed"},
        status="Failure",
        reason="StepFailed",
        progress="1/3",
        states=["Terminated", "NotRun", "NotRun"],
        duration="1s",
    ),
    Case(
        "start-error-zero-timestamp",
        init=[
            terminated(
                "a",
                128,
                0,
                6,
                reason="StartError",
                message='exec: "nope": executable file not found in $PATH',
                started_at="1970-01-01T00:00:00Z",
            ),
            waiting("b", "PodInitializing"),
        ],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed", "start": 2},
        status="Failure",
        reason="StepFailed",
        message_has=("exit code 128 (StartError)", "executable file not found"),
        start_at="2024-01-06 22:19:26",
        duration="4s",
    ),
    Case(
        "oom-killed",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 20, reason="OOMKilled")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed"},
        status="Failure",
        reason="OOMKilled",
        message_has=("step b (2/3)", "memory limit"),
        states=["Terminated", "Terminated", "NotRun"],
    ),
    Case(
        "err-image-pull-within-timeout",
        init=[
            waiting("a", "ErrImagePull", 'failed to pull "nope:1"'),
            waiting("b", "PodInitializing"),
        ],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"start": 0},
        now=100,
        status="Pending",
        reason="ImagePullBackOff",
        progress="0/3",
        message_has=("step a (1/3)", "cannot pull image", "ErrImagePull", "5m0s"),
        requeue=200,
        start_at=None,
    ),
    Case(
        "image-pull-backoff-within-timeout-later-step",
        init=[terminated("a", 0, 5, 8), waiting("b", "ImagePullBackOff", "Back-off pulling")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Pending"},
        now=8 + 30,
        status="Running",
        reason="ImagePullBackOff",
        progress="1/3",
        requeue=270,
    ),
    Case(
        "image-pull-backoff-timed-out",
        init=[terminated("a", 0, 5, 8), waiting("b", "ImagePullBackOff", "Back-off pulling")],
        main=[waiting("c", "PodInitializing")],
        now=8 + 301,
        status="Failure",
        reason="ImagePullFailed",
        progress="1/3",
        states=["Terminated", "NotRun", "NotRun"],
        message_has=("step b (2/3)", "cannot pull image 'busybox:1.36' for 5m1s"),
        duration="3s",
        completion=ts(8),
    ),
    Case(
        "err-image-pull-timed-out-first-step",
        init=[waiting("a", "ErrImagePull"), waiting("b", "PodInitializing")],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"start": 1},
        now=400,
        status="Failure",
        reason="ImagePullFailed",
        progress="0/3",
        states=["NotRun"] * 3,
        start_at="2024-01-06 22:19:25",
        completion=ts(400),
    ),
    Case(
        "invalid-image-name-at-once",
        init=[waiting("a", "InvalidImageName", 'Failed to apply default image tag "<x>"')],
        main=[waiting("c", "PodInitializing")],
        now=2,
        status="Failure",
        reason="ImagePullFailed",
        message_has=("InvalidImageName", "step a (1/3)"),
    ),
    Case(
        "err-image-never-pull-at-once",
        main=[waiting("c", "ErrImageNeverPull")],
        names=("c",),
        now=2,
        status="Failure",
        reason="ImagePullFailed",
        progress="0/1",
    ),
    Case(
        "config-error-within-timeout",
        main=[waiting("c", "CreateContainerConfigError", 'secret "s" not found')],
        names=("c",),
        now=60,
        status="Pending",
        reason="CreateContainerConfigError",
        message_has=('secret "s" not found', "2m0s"),
        requeue=60,
    ),
    Case(
        "config-error-timed-out",
        main=[waiting("c", "CreateContainerConfigError", 'configmap "m" not found')],
        names=("c",),
        now=121,
        status="Failure",
        reason="ContainerConfigError",
        message_has=('configmap "m" not found', "step c (1/1)"),
    ),
    Case(
        "create-container-error-timed-out",
        main=[waiting("c", "CreateContainerError", "context deadline exceeded")],
        names=("c",),
        now=500,
        status="Failure",
        reason="ContainerConfigError",
    ),
    Case(
        "evicted",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 30)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on resource: memory.",
        },
        status="Failure",
        reason="Evicted",
        message_has=("evicted", "low on resource"),
        states=["Terminated", "Terminated", "NotRun"],
    ),
    Case(
        "evicted-no-container-statuses",
        pod_kw={"phase": "Failed", "reason": "Evicted", "message": "disk pressure"},
        now=50,
        status="Failure",
        reason="Evicted",
        states=["NotRun"] * 3,
        completion=ts(50),
    ),
    Case(
        "node-shutdown",
        init=[terminated("a", 0, 5, 8), terminated("b", 143, 9, 30)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={
            "phase": "Failed",
            "reason": "Terminated",
            "message": "Pod was terminated in response to imminent node shutdown.",
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": "Pod was terminated in response to imminent node shutdown.",
                }
            ],
        },
        status="Failure",
        reason="Evicted",
        message_has=("TerminationByKubelet", "node shutdown"),
    ),
    Case(
        "deadline-exceeded",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 60)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active..."},
        spec={"activeDeadlineSeconds": 60},
        status="Failure",
        reason="DeadlineExceeded",
        message_has=("activeDeadlineSeconds (60s)",),
    ),
    Case(
        "deadline-set-on-the-pod-by-someone-else",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 60)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active..."},
        status="Failure",
        reason="DeadlineExceeded",
        message_has=("the pod ran longer than its activeDeadlineSeconds",),
    ),
    Case(
        "deadline-exceeded-seen-before-pod-reason",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 61)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Running"},
        spec={"activeDeadlineSeconds": 60},
        status="Failure",
        reason="DeadlineExceeded",
    ),
    Case(
        "killed-before-deadline-is-step-failure",
        init=[terminated("a", 0, 5, 8), terminated("b", 137, 9, 20)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Failed"},
        spec={"activeDeadlineSeconds": 60},
        status="Failure",
        reason="StepFailed",
    ),
    Case(
        "unschedulable",
        pod_kw={
            "start": None,
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }
            ],
        },
        now=10_000,
        status="Pending",
        reason="Unschedulable",
        message_has=("0/1 nodes are available: 1 Insufficient cpu.",),
        requeue=None,
    ),
    Case(
        "stale-unschedulable-condition-but-running",
        init=[running("a", 5)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
        status="Running",
        reason="Running",
        progress="1/3",
    ),
    Case(
        "pod-failed-admission",
        pod_kw={"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough cpu"},
        status="Failure",
        reason="PodFailed",
        message_has=("OutOfcpu", "enough cpu"),
        states=["NotRun"] * 3,
    ),
    # a terminal pod without (or with stale) container statuses: nothing will change any
    # more, so the Task ends instead of waiting for steps that never report
    Case(
        "pod-succeeded-without-container-statuses",
        pod_kw={"phase": "Succeeded"},
        status="Failure",
        reason="PodFailed",
        message_has=("phase Succeeded", "no result for step a (1/3)"),
        states=["NotRun"] * 3,
        completion=ts(100),
    ),
    Case(
        "pod-succeeded-with-a-stale-running-step",
        init=[terminated("a", 0, 5, 8), running("b", 9)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Succeeded", "reason": "NodeLost", "message": "node gone"},
        status="Failure",
        reason="PodFailed",
        message_has=("phase Succeeded, NodeLost: node gone", "step b (2/3)"),
        states=["Terminated", "Terminated", "NotRun"],
        progress="2/3",
    ),
    Case(
        "pod-failed-node-affinity-never-started",
        pod_kw={
            "phase": "Failed",
            "start": None,
            "reason": "NodeAffinity",
            "message": "Pod Predicate NodeAffinity failed",
        },
        status="Failure",
        reason="PodFailed",
        message_has=("NodeAffinity: Pod Predicate NodeAffinity failed",),
        states=["NotRun"] * 3,
    ),
    Case(
        "pod-being-deleted",
        init=[terminated("a", 0, 5, 8), running("b", 9)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={"phase": "Running", "deleting": True},
        status="Failure",
        reason="PodDeleted",
        message_has=("demo-pod", "deleted"),
        states=["Terminated", "Terminated", "NotRun"],
        progress="2/3",
    ),
    Case(
        "pod-being-evicted-by-api",
        init=[running("a", 5)],
        main=[waiting("c", "PodInitializing")],
        pod_kw={
            "phase": "Running",
            "deleting": True,
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }
            ],
        },
        status="Failure",
        reason="Evicted",
    ),
    Case(
        "deleted-after-success-is-still-success",
        init=[terminated("a", 0, 5, 8), terminated("b", 0, 9, 12)],
        main=[terminated("c", 0, 13, 36)],
        pod_kw={"phase": "Succeeded", "deleting": True},
        status="Successful",
    ),
    Case(
        "more-than-ten-steps",
        names=tuple(f"step{i}" for i in range(1, 13)),
        init=[terminated(f"step{i}", 0, i, i + 1) for i in range(1, 12)],
        main=[running("step12", 13)],
        status="Running",
        progress="12/12",
        message_has=("step step12 (12/12) is running",),
    ),
    Case(
        "names-not-alphabetical",
        names=("zeta", "alpha", "mid"),
        init=[terminated("zeta", 0, 1, 2), terminated("alpha", 4, 3, 5)],
        main=[waiting("mid", "PodInitializing")],
        pod_kw={"phase": "Failed"},
        status="Failure",
        reason="StepFailed",
        states=["Terminated", "Terminated", "NotRun"],
        message_has=("step alpha (2/3) failed with exit code 4",),
    ),
]


def _task_for(case: Case, **kw: Any) -> Any:
    return task(*(step(n) for n in case.names), **case.spec, **kw)


def _check(case: Case, st: TaskStatus, requeue: float | None) -> None:
    assert st.status == case.status
    cond = st.condition()
    assert cond is not None
    assert cond.type == "Succeeded"
    assert cond.status == {"Successful": "True", "Failure": "False"}.get(case.status, "Unknown")
    if case.reason is not None:
        assert cond.reason == case.reason
    for part in case.message_has:
        assert part in (cond.message or ""), (part, cond.message)
    if case.progress is not None:
        assert st.progress == case.progress
    assert [s.name for s in st.steps] == list(case.names)  # spec order, by name
    if case.states is not None:
        assert [s.state for s in st.steps] == case.states
    if case.start_at is not True:
        assert st.start_at == case.start_at
    if case.duration is not True:
        assert st.duration == case.duration
    if case.completion is not True:
        assert st.completion_time == case.completion
    if case.requeue is not True:
        assert requeue == case.requeue
    finished = case.status in ("Successful", "Failure")
    assert (st.completion_time is not None) == finished or st.start_time is None
    if not finished:
        assert st.duration is None
        assert all(s.state != "NotRun" for s in st.steps)
    else:
        assert all(s.state in ("Terminated", "NotRun") for s in st.steps)
    assert st.pod_name == "demo-pod"
    assert st.observed_generation == 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_status(case: Case) -> None:
    t = _task_for(case)
    p = pod(t, case.init, case.main, **case.pod_kw)
    ev = evaluate(t, p, now=at(case.now), settings=SETTINGS)
    _check(case, ev.status, ev.requeue_after)
    assert compute_status(t, p, now=at(case.now), settings=SETTINGS) == ev.status


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_status_ignores_order_of_container_statuses(case: Case) -> None:
    t = _task_for(case)
    expected = evaluate(
        t, pod(t, case.init, case.main, **case.pod_kw), now=at(case.now), settings=SETTINGS
    )
    rng = random.Random(case.id)
    for _ in range(5):
        every = [*(case.init or []), *(case.main or [])]
        rng.shuffle(every)
        cut = rng.randint(0, len(every))
        shuffled = pod(t, every[:cut], every[cut:], **case.pod_kw)
        got = evaluate(t, shuffled, now=at(case.now), settings=SETTINGS)
        assert got == expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_finished_status_is_a_fixed_point(case: Case) -> None:
    """Feeding the status back and evaluating later never changes a finished Task."""
    t = _task_for(case)
    p = pod(t, case.init, case.main, **case.pod_kw)
    first = compute_status(t, p, now=at(case.now), settings=SETTINGS)
    t2 = decode_task(
        task_dict(*(step(n) for n in case.names), **case.spec, status=msgspec.to_builtins(first))
    )
    later = compute_status(t2, p, now=at(case.now + 3600), settings=SETTINGS)
    if first.finished:
        assert later == first
        assert compute_status(t2, None, now=at(case.now + 7200), settings=SETTINGS) == first
    else:
        # same observation later: only timeouts may change the outcome
        assert (
            later.conditions[0].last_transition_time == first.conditions[0].last_transition_time
            or later.finished
        )


# --- pod absent --------------------------------------------------------------------------------


def test_no_pod_yet() -> None:
    t = steps_task(*ABC)
    st = compute_status(t, None, now=T0, settings=SETTINGS)
    assert st.status == "Pending"
    assert st.pod_name == "demo-pod"
    assert st.progress == "0/3"
    assert [s.state for s in st.steps] == ["Waiting"] * 3
    c = st.condition()
    assert c is not None
    assert (c.status, c.reason) == ("Unknown", "Pending")
    assert c.last_transition_time == format_time(T0)
    assert st.start_at is None
    assert st.observed_generation == 1


def test_pod_gone_after_it_was_created() -> None:
    old = TaskStatus(
        status="Running",
        start_at="2024-01-06 22:19:29",
        start_time=ts(5),
        pod_name="demo-pod",
        progress="2/3",
        steps=[
            StepStatus(
                name="a", state="Terminated", exit_code=0, started_at=ts(5), finished_at=ts(8)
            ),
            StepStatus(name="b", state="Running", started_at=ts(9)),
            StepStatus(name="c", state="Waiting", reason="PodInitializing"),
        ],
        conditions=[
            Condition(
                type="Succeeded", status="Unknown", reason="Running", last_transition_time=ts(5)
            )
        ],
    )
    t = steps_task(*ABC, status=msgspec.to_builtins(old))
    st = compute_status(t, None, now=at(100), settings=SETTINGS)
    assert st.status == "Failure"
    c = st.condition()
    assert c is not None
    assert (c.status, c.reason) == ("False", "PodDeleted")
    assert "demo-pod" in (c.message or "")
    assert c.last_transition_time == ts(100)
    assert [s.state for s in st.steps] == ["Terminated", "Terminated", "NotRun"]
    assert st.steps[1].reason == "PodDeleted"
    assert st.start_at == "2024-01-06 22:19:29"
    assert st.completion_time == ts(100)
    assert st.duration == "1m35s"
    assert st.pod_name == "demo-pod"


def test_pod_gone_before_any_status_detail() -> None:
    t = steps_task("a", status={"status": "Pending", "podName": "demo-pod"})
    st = compute_status(t, None, now=at(3), settings=SETTINGS)
    assert st.status == "Failure"
    assert [s.state for s in st.steps] == ["NotRun"]
    assert st.duration is None  # never started


# --- conditions --------------------------------------------------------------------------------


def test_last_transition_time_kept_while_condition_status_is_unchanged() -> None:
    t = steps_task(*ABC)
    p1 = pod(t, [running("a", 5)], [waiting("c", "PodInitializing")])
    s1 = compute_status(t, p1, now=at(6), settings=SETTINGS)
    t2 = steps_task(*ABC, status=msgspec.to_builtins(s1))
    p2 = pod(t, [terminated("a", 0, 5, 8), running("b", 9)], [waiting("c", "PodInitializing")])
    s2 = compute_status(t2, p2, now=at(20), settings=SETTINGS)
    assert s2.conditions[0].last_transition_time == ts(6)
    assert s2.conditions[0].message != s1.conditions[0].message
    t3 = steps_task(*ABC, status=msgspec.to_builtins(s2))
    p3 = pod(
        t,
        [terminated("a", 0, 5, 8), terminated("b", 0, 9, 12)],
        [terminated("c", 0, 13, 20)],
        phase="Succeeded",
    )
    s3 = compute_status(t3, p3, now=at(30), settings=SETTINGS)
    assert s3.conditions[0].status == "True"
    assert s3.conditions[0].last_transition_time == ts(30)


def test_observed_generation() -> None:
    t = steps_task("a", generation=7)
    assert compute_status(t, None, now=T0, settings=SETTINGS).observed_generation == 7


def test_step_details_copied_from_kubelet() -> None:
    t = steps_task("a", "b")
    p = pod(
        t,
        [terminated("a", 3, 5, 8, message="last log line\n")],
        [waiting("b", "PodInitializing")],
        phase="Failed",
    )
    st = compute_status(t, p, now=at(10), settings=SETTINGS)
    assert st.steps[0] == StepStatus(
        name="a",
        state="Terminated",
        exit_code=3,
        reason="Error",
        message="last log line\n",
        started_at=ts(5),
        finished_at=ts(8),
    )
    assert st.steps[1] == StepStatus(name="b", state="NotRun")


def test_condition_message_is_bounded() -> None:
    t = steps_task("a")
    p = pod(t, None, [terminated("a", 1, 1, 2, message="x" * 5000)], phase="Failed")
    st = compute_status(t, p, now=at(3), settings=SETTINGS)
    assert len(st.conditions[0].message or "") <= 1024
    assert st.steps[0].message == "x" * 5000


def test_timeouts_follow_settings() -> None:
    t = steps_task("a")
    p = pod(t, None, [waiting("a", "ImagePullBackOff")], start=0)
    quick = Settings(image_pull_timeout=10, config_error_timeout=10)
    assert compute_status(t, p, now=at(11), settings=quick).status == "Failure"
    assert compute_status(t, p, now=at(11), settings=SETTINGS).status == "Pending"
    ev = evaluate(t, p, now=at(9.5), settings=quick)
    assert ev.requeue_after == 1.0  # never less than a second


def test_timeout_counts_from_creation_when_pod_has_no_start_time() -> None:
    t = steps_task("a")
    p = pod(t, None, [waiting("a", "ErrImagePull")], start=None)
    ev = evaluate(t, p, now=at(99), settings=SETTINGS)  # created at -1
    assert ev.requeue_after == 200


def test_naive_now_is_utc() -> None:
    t = steps_task("a")
    p = pod(t, None, [waiting("a", "ErrImagePull")], start=0)
    aware = evaluate(t, p, now=at(50), settings=SETTINGS)
    naive = evaluate(t, p, now=at(50).replace(tzinfo=None), settings=SETTINGS)
    assert aware == naive


def test_invalid_spec_without_decoding() -> None:
    t = steps_task("a")
    t.spec.steps = [t.spec.steps[0], t.spec.steps[0]]
    st = compute_status(t, None, now=T0, settings=SETTINGS)
    assert st.status == "Failure"
    assert st.conditions[0].reason == "InvalidSpec"


def test_pod_dict_decodes_like_the_api_server_sends_it() -> None:
    t = steps_task("a")
    d = pod_dict(t, None, [running("a", 1)], phase="Running")
    d["status"]["unknownField"] = {"x": 1}
    d["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    p = pod(t, None, [running("a", 1)], phase="Running")
    assert p.status.container_statuses[0].state.running is not None


# --- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (1, "1s"),
        (31, "31s"),
        (59.99, "59s"),
        (60, "1m0s"),
        (65, "1m5s"),
        (3599, "59m59s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
        (90061, "25h1m1s"),
        (-5, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_time_formats() -> None:
    assert format_time(T0) == "2024-01-06T22:19:24Z"
    assert format_start_at(T0) == "2024-01-06 22:19:24"
    assert format_time(T0 + timedelta(microseconds=999_999)) == "2024-01-06T22:19:24Z"
    assert parse_time("2024-01-06T22:19:24Z") == T0
    assert parse_time("2024-01-07T06:19:24+08:00") == T0
