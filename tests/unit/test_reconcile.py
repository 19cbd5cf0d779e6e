"""reconcile.plan / rejected / undecodable: decisions and transition events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from taskflow.api import TaskStatus, decode_task
from taskflow.api.task_status import StepStatus
from taskflow.reconcile import (
    EventSpec,
    Plan,
    create_refused,
    plan,
    rejected,
    transition_events,
    undecodable,
)
from taskflow.render import render_pod
from taskflow.status import compute_status
from tests.unit.builders import (
    ABC,
    SETTINGS,
    at,
    pod,
    running,
    step,
    steps_task,
    task,
    task_dict,
    terminated,
    ts,
    waiting,
)


def reasons(p: Plan) -> list[str]:
    return [e.reason for e in p.events]


def with_status(status: TaskStatus | None, *names: str, **kw: Any) -> Any:
    raw = msgspec.to_builtins(status) if status is not None else None
    return decode_task(task_dict(*(step(n) for n in names), status=raw, **kw))


def test_new_task_creates_the_pod() -> None:
    t = steps_task(*ABC)
    p = plan(t, None, now=at(0), settings=SETTINGS)
    assert p.create_pod == render_pod(t, SETTINGS)
    assert p.status is not None
    assert p.status.status == "Pending"
    assert p.status.pod_name == "demo-pod"
    assert p.events == (
        EventSpec(type="Normal", reason="PodCreated", message="Created pod demo-pod"),
    )
    assert p.requeue_after is None


def test_pod_created_but_not_yet_observed_never_creates_twice() -> None:
    t = steps_task(*ABC)
    first = plan(t, None, now=at(0), settings=SETTINGS)
    t2 = with_status(first.status, *ABC)
    # the pod vanished from the cache: not a re-run, a PodDeleted failure
    p = plan(t2, None, now=at(5), settings=SETTINGS)
    assert p.create_pod is None
    assert p.status is not None
    assert p.status.status == "Failure"
    assert p.status.conditions[0].reason == "PodDeleted"
    assert reasons(p) == ["Failed"]
    assert p.events[0].type == "Warning"


def test_unchanged_status_is_not_patched_and_says_nothing() -> None:
    t = steps_task(*ABC)
    pd = pod(t, [running("a", 5)], [waiting("c", "PodInitializing")])
    s1 = compute_status(t, pd, now=at(6), settings=SETTINGS)
    t2 = with_status(s1, *ABC)
    p = plan(t2, pd, now=at(60), settings=SETTINGS)
    assert p == Plan()


def test_finished_task_gets_an_empty_plan_forever() -> None:
    t = steps_task(*ABC)
    done = pod(
        t,
        [terminated("a", 0, 1, 2), terminated("b", 0, 3, 4)],
        [terminated("c", 0, 5, 6)],
        phase="Succeeded",
    )
    s = compute_status(t, done, now=at(7), settings=SETTINGS)
    t2 = with_status(s, *ABC)
    for p in (done, None, pod(t, [], [], phase="Failed", reason="Evicted")):
        assert plan(t2, p, now=at(1_000_000), settings=SETTINGS) == Plan()
    assert rejected(t2, "nope", now=at(9)) == Plan()
    assert undecodable(msgspec.to_builtins(s), "bad", now=at(9)) == Plan()


def run_story(observations: list[tuple[float, Any]]) -> list[list[str]]:
    """Feed successive pod observations through plan(), carrying the status forward."""
    t = steps_task(*ABC)
    out = []
    for now, pd in observations:
        p = plan(t, pd, now=at(now), settings=SETTINGS)
        out.append([f"{e.type}/{e.reason}" for e in p.events])
        if p.status is not None:
            t = with_status(p.status, *ABC)
    return out


def test_story_success() -> None:
    t = steps_task(*ABC)

    def P(init: list[Any], main: list[Any], **kw: Any) -> Any:
        return pod(t, init, main, **kw)

    story = run_story(
        [
            (0, None),
            (
                1,
                P(
                    [waiting("a"), waiting("b", "PodInitializing")],
                    [waiting("c", "PodInitializing")],
                ),
            ),
            (
                2,
                P(
                    [running("a", 2), waiting("b", "PodInitializing")],
                    [waiting("c", "PodInitializing")],
                ),
            ),
            (
                3,
                P(
                    [running("a", 2), waiting("b", "PodInitializing")],
                    [waiting("c", "PodInitializing")],
                ),
            ),
            (5, P([terminated("a", 0, 2, 4), running("b", 5)], [waiting("c", "PodInitializing")])),
            # b and c both ran between two observations
            (
                9,
                P(
                    [terminated("a", 0, 2, 4), terminated("b", 0, 5, 6)],
                    [terminated("c", 0, 7, 8)],
                    phase="Succeeded",
                ),
            ),
            (10, None),  # pod garbage collected later: the finished Task does not care
        ]
    )
    assert story == [
        ["Normal/PodCreated"],
        [],
        ["Normal/StepStarted"],
        [],
        ["Normal/StepSucceeded", "Normal/StepStarted"],
        [
            "Normal/StepSucceeded",  # b
            "Normal/StepStarted",  # c
            "Normal/StepSucceeded",  # c
            "Normal/Succeeded",
        ],
        [],
    ]


def test_story_failure() -> None:
    t = steps_task(*ABC)

    def P(init: list[Any], main: list[Any], **kw: Any) -> Any:
        return pod(t, init, main, **kw)

    story = run_story(
        [
            (0, None),
            (
                2,
                P(
                    [running("a", 2), waiting("b", "PodInitializing")],
                    [waiting("c", "PodInitializing")],
                ),
            ),
            (
                5,
                P(
                    [terminated("a", 0, 2, 3), terminated("b", 1, 3, 4)],
                    [waiting("c", "PodInitializing")],
                    phase="Failed",
                ),
            ),
            (6, None),
        ]
    )
    assert story == [
        ["Normal/PodCreated"],
        ["Normal/StepStarted"],
        ["Normal/StepSucceeded", "Normal/StepStarted", "Warning/StepFailed", "Warning/Failed"],
        [],
    ]


def test_failure_event_messages_name_the_step() -> None:
    t = steps_task(*ABC)
    pd = pod(
        t,
        [terminated("a", 0, 2, 3), terminated("b", 7, 3, 4)],
        [waiting("c", "PodInitializing")],
        phase="Failed",
    )
    p = plan(t, pd, now=at(5), settings=SETTINGS)
    msgs = {e.reason: e.message for e in p.events}
    assert msgs["StepFailed"] == "step b (2/3) failed with exit code 7"
    assert msgs["Failed"].startswith("StepFailed: step b (2/3) failed with exit code 7")


def test_problem_events_once_per_reason() -> None:
    t = steps_task("a")
    pull = pod(t, None, [waiting("a", "ErrImagePull", "rpc error")], start=0)
    backoff = pod(t, None, [waiting("a", "ImagePullBackOff", "Back-off pulling")], start=0)
    story = []
    tt = t
    for now, pd in [(1, pull), (20, backoff), (40, pull), (301, backoff)]:
        p = plan(tt, pd, now=at(now), settings=SETTINGS)
        story.append(reasons(p))
        if p.status is not None:
            tt = with_status(p.status, "a")
        if now < 300:
            assert p.requeue_after == pytest.approx(300 - now)
    # the Task had no status yet: this reconcile is the first to name the pod
    assert story == [["PodCreated", "ImagePullBackOff"], [], [], ["Failed"]]


def test_unschedulable_event() -> None:
    t = steps_task("a")
    cond = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available",
        }
    ]
    p = plan(t, pod(t, None, None, start=None, conditions=cond), now=at(1), settings=SETTINGS)
    assert [(e.type, e.reason) for e in p.events] == [
        ("Normal", "PodCreated"),
        ("Warning", "Unschedulable"),
    ]
    assert p.status is not None
    assert p.status.status == "Pending"
    assert p.requeue_after is None


def test_events_are_deterministic() -> None:
    t = steps_task(*ABC)
    pd = pod(t, [terminated("a", 0, 2, 3), running("b", 4)], [waiting("c", "PodInitializing")])
    a = plan(t, pd, now=at(5), settings=SETTINGS)
    b = plan(t, pd, now=at(500), settings=SETTINGS)
    assert a.events == b.events


def test_event_messages_are_bounded() -> None:
    t = steps_task("a")
    pd = pod(t, None, [terminated("a", 1, 1, 2, message="y" * 10_000)], phase="Failed")
    p = plan(t, pd, now=at(3), settings=SETTINGS)
    assert all(len(e.message) <= 1024 for e in p.events)


def test_rejected() -> None:
    t = steps_task(*ABC)
    p = rejected(t, 'Pod "demo-pod" is invalid: spec.volumes[0].name: Invalid value\n', now=at(1))
    assert p.create_pod is None
    assert p.status is not None
    st = p.status
    assert st.status == "Failure"
    assert st.pod_name is None
    assert [s.state for s in st.steps] == ["NotRun"] * 3
    c = st.conditions[0]
    assert (c.status, c.reason) == ("False", "InvalidPodSpec")
    assert c.message == (
        'the API server rejected the pod: Pod "demo-pod" is invalid: '
        "spec.volumes[0].name: Invalid value"
    )
    assert st.completion_time == ts(1)
    assert [(e.type, e.reason) for e in p.events] == [("Warning", "Failed")]
    assert "InvalidPodSpec" in p.events[0].message


QUOTA = 'pods "demo-pod" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1'


def test_refused_create_stays_pending_without_a_pod_name_and_warns_once() -> None:
    t = steps_task(*ABC)
    p = create_refused(t, QUOTA + "\n", now=at(1))
    assert p.create_pod is None
    st = p.status
    assert st is not None
    assert (st.status, st.pod_name, st.progress) == ("Pending", None, "0/3")
    [c] = st.conditions
    assert (c.status, c.reason) == ("Unknown", "FailedCreate")
    assert c.message == f"cannot create the pod: {QUOTA}"
    assert p.events == (EventSpec("Warning", "FailedCreate", c.message),)
    # the retry is refused the same way: nothing to write, nothing to say
    again = create_refused(with_status(st, *ABC), QUOTA, now=at(9))
    assert again == Plan()
    # no podName, so the next plan creates the pod instead of declaring it deleted
    later = plan(with_status(st, *ABC), None, now=at(20), settings=SETTINGS)
    assert later.create_pod is not None
    assert later.status is not None
    assert (later.status.pod_name, later.status.conditions[0].reason) == ("demo-pod", "Pending")


def test_refused_create_of_a_finished_task_is_ignored() -> None:
    done = with_status(TaskStatus(status="Failure"), *ABC)
    assert create_refused(done, QUOTA, now=at(1)) == Plan()


@pytest.mark.parametrize(
    "raw_status", [None, {}, {"status": "Running", "podName": "x-pod"}, "garbage", {"steps": 3}]
)
def test_undecodable(raw_status: Any) -> None:
    p = undecodable(raw_status, "Expected `str`, got `int` - at `$.spec.steps[0].image`", now=at(2))
    assert p.status is not None
    assert p.status.status == "Failure"
    c = p.status.conditions[0]
    assert c.reason == "InvalidSpec"
    assert "$.spec.steps[0].image" in (c.message or "")
    assert p.status.steps == []
    assert reasons(p) == ["Failed"]
    # applying it again changes nothing
    again = undecodable(msgspec.to_builtins(p.status), "whatever", now=at(99))
    assert again == Plan()


def test_task_stored_without_schema_is_invalid_spec() -> None:
    t = steps_task("a")
    t.spec.steps = [t.spec.steps[0], t.spec.steps[0]]
    p = plan(t, None, now=at(1), settings=SETTINGS)
    assert p.create_pod is None
    assert p.status is not None
    assert p.status.conditions[0].reason == "InvalidSpec"
    assert "unique" in (p.status.conditions[0].message or "")


def test_transition_events_from_nothing() -> None:
    t = steps_task("a")
    s = compute_status(t, None, now=at(0), settings=SETTINGS)
    assert [e.reason for e in transition_events(t, None, s)] == ["PodCreated"]
    assert transition_events(t, s, s) == []


def test_pod_created_before_a_crash_is_still_announced_once() -> None:
    # the operator created the pod and died before writing any status: the next plan sees
    # the pod (no second create) and still records the PodCreated transition
    t = steps_task(*ABC)
    pd = pod(t, [running("a", 5)], [waiting("c", "PodInitializing")])
    p = plan(t, pd, now=at(6), settings=SETTINGS)
    assert p.create_pod is None
    assert reasons(p) == ["PodCreated", "StepStarted"]
    assert p.status is not None
    t2 = with_status(p.status, *ABC)
    assert "PodCreated" not in reasons(plan(t2, pd, now=at(7), settings=SETTINGS))


def test_a_replanned_transition_yields_the_same_event_keys() -> None:
    # first plan: b running; its events could not be recorded, so the status stayed old;
    # the retry sees b already finished: the StepStarted event must be the same one, and
    # the final event's key does not depend on its message
    t = steps_task(*ABC)
    first = pod(t, [terminated("a", 0, 2, 4), running("b", 5)], [waiting("c", "PodInitializing")])
    s0 = compute_status(
        t,
        pod(t, [running("a", 2)], [waiting("c", "PodInitializing")]),
        now=at(3),
        settings=SETTINGS,
    )
    t0 = with_status(s0, *ABC)
    retry = pod(
        t,
        [terminated("a", 0, 2, 4), terminated("b", 3, 5, 6)],
        [waiting("c", "PodInitializing")],
        phase="Failed",
    )
    p1 = plan(t0, first, now=at(5), settings=SETTINGS)
    p2 = plan(t0, retry, now=at(7), settings=SETTINGS)
    key = {(e.reason, e.key or e.message) for e in p1.events}
    assert key <= {(e.reason, e.key or e.message) for e in p2.events}
    final = [e for e in p2.events if e.reason == "Failed"]
    assert [e.key for e in final] == ["final"]


def _retried_task(retries: int = 2) -> Any:
    return task(
        step("a", command=["x"]), step("b", command=["y"], retries=retries), executor="agent"
    )


def _b(state: str, **kw: Any) -> StepStatus:
    return StepStatus(name="b", state=state, **kw)


A_DONE = StepStatus(name="a", state="Terminated", exit_code=0, started_at=ts(1))


@pytest.mark.parametrize(
    ("b", "attempt", "expected"),
    [
        (  # succeeded at once: no Retrying
            _b("Terminated", exit_code=0, started_at=ts(2)),
            1,
            [("StepSucceeded", "step b (2/2) succeeded")],
        ),
        (
            _b("Terminated", exit_code=0, started_at=ts(2), attempts=2, retried_exit_codes=[1]),
            1,
            [
                ("Retrying", "step b attempt 2 of 3 after exit code 1"),
                ("StepSucceeded", "step b (2/2) succeeded"),
            ],
        ),
        (
            _b("Terminated", exit_code=4, started_at=ts(2), attempts=3, retried_exit_codes=[1, 2]),
            1,
            [
                ("Retrying", "step b attempt 2 of 3 after exit code 1"),
                ("Retrying", "step b attempt 3 of 3 after exit code 2"),
                ("StepFailed", "step b (2/2) failed with exit code 4"),
            ],
        ),
        (  # the exit codes did not fit the termination message: the count still did
            _b("Terminated", exit_code=0, started_at=ts(2), attempts=2),
            2,
            [
                ("Retrying", "step b attempt 2 of 3 (Task attempt 2)"),
                ("StepSucceeded", "step b (2/2, attempt 2) succeeded"),
            ],
        ),
    ],
)
def test_retrying_events_come_with_the_steps_end(
    b: StepStatus, attempt: int, expected: list[tuple[str, str]]
) -> None:
    t = _retried_task()
    old = TaskStatus(status="Running", attempt=attempt, steps=[A_DONE, _b("Running")])
    new = TaskStatus(status="Running", attempt=attempt, steps=[A_DONE, b])
    events = transition_events(t, old, new)
    assert [(e.reason, e.message) for e in events] == expected
    assert all(e.type == "Normal" for e in events if e.reason == "Retrying")
    assert transition_events(t, new, new) == []  # once: the step's end is one transition
    # the same events (keys) when the transition is planned again
    assert transition_events(t, old, new) == events
    keys = {e.key for e in events if e.reason == "Retrying"}
    assert len(keys) == sum(e.reason == "Retrying" for e in events)


def test_retrying_events_of_a_step_that_was_never_seen_running() -> None:
    t = _retried_task(retries=1)
    b = _b("Terminated", exit_code=0, started_at=ts(2), attempts=2, retried_exit_codes=[137])
    new = TaskStatus(status="Successful", pod_name="p", steps=[A_DONE, b])
    old = TaskStatus(status="Pending", pod_name="p")
    assert [e.message for e in transition_events(t, old, new) if e.reason == "Retrying"] == [
        "step b attempt 2 of 2 after exit code 137"
    ]
