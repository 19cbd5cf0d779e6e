"""A pod name held by a pod that is not the Task's (409 on create): reconcile.name_taken and
the bound in plan(), as tables and one story."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from taskflow.api import Pod, Task, TaskStatus, decode_pod, decode_task
from taskflow.reconcile import Plan, name_taken, plan
from taskflow.settings import Settings
from tests.unit.builders import ABC, SETTINGS, at, pod, pod_dict, step, task_dict, ts

OLD_UID = "0b5d7f4e-0000-4000-8000-0000000000aa"


def make(*, status: TaskStatus | None = None, **spec: Any) -> Task:
    raw = msgspec.to_builtins(status) if status is not None else None
    return decode_task(task_dict(*(step(n) for n in ABC), status=raw, **spec))


def advance(t: Task, p: Plan) -> Task:
    """The Task as the next reconcile sees it after ``p``'s status was written."""
    return make(status=p.status or t.status, **msgspec.to_builtins(t.spec))


def holder(
    *,
    label: str | None = None,
    owner: tuple[str, str, str] | None = None,
    deleting: bool = False,
) -> Pod:
    """A pod named like the Task's (``demo-pod``) that is not the Task's."""
    doc = pod_dict(make(), deleting=deleting)
    doc["metadata"]["labels"] = {"api.practice.com/task-uid": label} if label else {}
    if owner is not None:
        kind, name, uid = owner
        doc["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}
        ]
    return decode_pod(doc)


def cond(p: Plan) -> tuple[str | None, str | None, str]:
    assert p.status is not None
    c = p.status.condition()
    assert c is not None
    return p.status.status, c.reason, c.message or ""


@pytest.mark.parametrize(
    ("pod_", "going_away", "reason", "says"),
    [
        (holder(), False, "PodNameTaken", ['pod "demo-pod"', "not created by taskflow"]),
        (
            holder(label="someone"),
            False,
            "PodNameTaken",
            ["labelled api.practice.com/task-uid=someone", "delete that pod"],
        ),
        (
            holder(owner=("ReplicaSet", "web-1", "rs")),
            False,
            "PodNameTaken",
            ['owned by ReplicaSet "web-1"', "re-create the Task under another name"],
        ),
        (
            holder(label=OLD_UID, owner=("Task", "demo", OLD_UID)),
            True,
            "WaitingForOldPod",
            [f'the old pod "demo-pod" (of Task "demo" uid {OLD_UID})', "force-delete"],
        ),
        (holder(deleting=True), True, "WaitingForOldPod", ["to be deleted"]),
    ],
)
def test_a_held_name_waits_pending_and_says_whose_pod_and_what_to_do(
    pod_: Pod, going_away: bool, reason: str, says: list[str]
) -> None:
    p = name_taken(make(timeout="1h"), pod_, going_away=going_away, now=at(0), settings=SETTINGS)
    word, why, message = cond(p)
    assert (word, why) == ("Pending", reason)
    for part in says:
        assert part in message
    assert f"gives up at {ts(3590)}" in message  # created at ts(-10), timeout 1h
    assert p.status is not None
    assert p.status.pod_name is None  # no pod: the next plan creates, not "PodDeleted"
    assert p.create_pod is None
    assert [(e.type, e.reason) for e in p.events] == [("Warning", reason)]
    assert p.requeue_after == 1.0


def test_the_wait_backs_off_to_a_cap_says_it_once_and_ends_at_the_timeout() -> None:
    t = make(timeout="2m")  # created at ts(-10): gives up at at(110)
    squatter = holder()
    pauses = []
    now = 0.0
    written: list[Plan] = []
    while True:
        p = name_taken(t, squatter, going_away=False, now=at(now), settings=SETTINGS)
        if p.status is not None:
            written.append(p)
        if p.requeue_after is None:
            break
        pauses.append(p.requeue_after)
        t = advance(t, p)
        now += p.requeue_after
    # doubling from 1 s, capped at 30 s, the last pause stops at the bound
    assert pauses == [1, 1, 2, 4, 8, 16, 30, 30, 18]
    # one write and one Warning while waiting, one write and one Failed at the end
    assert [[e.reason for e in p.events] for p in written] == [["PodNameTaken"], ["Failed"]]
    word, reason, message = cond(written[-1])
    assert (word, reason) == ("Failure", "PodNameTaken")
    assert 'pod "demo-pod" already exists' in message
    assert "gave up at the Task's timeout (2m0s, spec.timeout)" in message
    assert "delete that pod" not in message  # no advice a finished Task cannot follow
    assert written[-1].status is not None
    assert [s.state for s in written[-1].status.steps] == ["NotRun"] * 3
    assert (
        name_taken(
            advance(t, written[-1]), squatter, going_away=False, now=at(200), settings=SETTINGS
        )
        == Plan()
    )


def test_the_timeout_ends_a_wait_as_what_it_was_not_as_timed_out() -> None:
    t = make(timeout="1m", retries=2)
    p = name_taken(t, holder(deleting=True), going_away=True, now=at(0), settings=SETTINGS)
    t = advance(t, p)
    # at the deadline plan() tries no create any more (no 409 to tell it about the pod)
    end = plan(t, None, now=at(50), settings=SETTINGS)
    word, reason, message = cond(end)
    assert (word, reason) == ("Failure", "WaitingForOldPod")
    assert message.startswith('waiting for the old pod "demo-pod" (not created by taskflow)')
    assert message.endswith(
        "; gave up at the Task's timeout (1m0s, spec.timeout): re-create the Task under "
        "another name, or once that pod is gone"
    )
    assert end.create_pod is None  # not retried: the timeout is the Task's
    assert [e.reason for e in end.events] == ["Failed"]
    assert end.status is not None
    assert end.status.attempt == 1
    # the same Task, had it been cancelled meanwhile, ends Cancelled
    cancelled = plan(
        make(status=t.status, timeout="1m", cancel=True), None, now=at(50), settings=SETTINGS
    )
    assert cond(cancelled)[:2] == ("Cancelled", "Cancelled")


def test_without_a_timeout_the_wait_is_capped_an_hour_after_creation() -> None:
    t = make()
    assert SETTINGS.default_timeout == 0
    p = name_taken(t, holder(), going_away=False, now=at(0), settings=SETTINGS)
    assert f"gives up at {ts(3590)}" in cond(p)[2]
    t = advance(t, p)
    assert plan(t, None, now=at(3589), settings=SETTINGS).create_pod is not None
    end = plan(t, None, now=at(3590), settings=SETTINGS)
    word, reason, message = cond(end)
    assert (word, reason) == ("Failure", "PodNameTaken")
    assert "gave up after 1h0m0s (a Task without timeout)" in message
    # the default timeout is the Task's timeout when it has none of its own
    hourly = Settings(default_timeout=600)
    p = name_taken(make(), holder(), going_away=False, now=at(0), settings=hourly)
    assert f"gives up at {ts(590)}" in cond(p)[2]


def test_once_the_name_is_free_the_pod_is_created_and_runs() -> None:
    t = make(timeout="1h")
    t = advance(t, name_taken(t, holder(), going_away=False, now=at(0), settings=SETTINGS))
    p = plan(t, None, now=at(5), settings=SETTINGS)
    assert p.create_pod is not None
    assert p.create_pod["metadata"]["name"] == "demo-pod"
    word, reason, _ = cond(p)
    assert (word, reason) == ("Pending", "Pending")
    t = advance(t, p)
    ours = plan(t, pod(t), now=at(6), settings=SETTINGS)  # not "PodDeleted"
    assert ours.status is None or cond(ours)[0] == "Pending"


def test_a_new_kind_of_wait_starts_its_backoff_again() -> None:
    t = make(timeout="1h")
    old = holder(label=OLD_UID, owner=("Task", "demo", OLD_UID))
    t = advance(t, name_taken(t, old, going_away=True, now=at(0), settings=SETTINGS))
    assert name_taken(t, old, going_away=True, now=at(20), settings=SETTINGS).requeue_after == 20
    # the old Task's owner is back in the cache (a stale view): now someone else's pod
    p = name_taken(t, old, going_away=False, now=at(20), settings=SETTINGS)
    assert cond(p)[1] == "PodNameTaken"
    assert p.requeue_after == 1.0
    assert [e.reason for e in p.events] == ["PodNameTaken"]
