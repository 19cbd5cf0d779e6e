"""The cache against its races: relists vs write-through,
write-through after a deletion, and what a finished Task keeps."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import msgspec
import pytest

from taskflow.api import decode_pod
from taskflow.api.meta import ObjectMeta
from taskflow.api.task import Task
from taskflow.engine.cache import (
    LAST_APPLIED,
    Cache,
    PodHandler,
    StringPool,
    TaskHandler,
    Tombstones,
    Undecodable,
    decode_task,
    provably_newer,
    slim,
)
from taskflow.labels import TASK_UID_LABEL
from tests.unit.builders import step, task_dict

FINISHED_STATUS = {"status": "Successful", "progress": "2/2"}


def raw(obj: dict[str, Any]) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(obj).encode())


def task_doc(uid: str, rv: str, status: dict[str, Any] | None = None, **kw: Any) -> Any:
    doc = task_dict(step("a"), uid=uid, status=status, **kw)
    doc["metadata"]["resourceVersion"] = rv
    return doc


def pod_doc(uid: str, rv: str, owner: str = "t1", ns: str = "default") -> Any:
    return {
        "metadata": {
            "name": f"{uid}-pod",
            "namespace": ns,
            "uid": uid,
            "resourceVersion": rv,
            "labels": {TASK_UID_LABEL: owner},
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        ("11", "9", True),  # integers compare as numbers, not strings
        ("9", "11", False),
        ("5", "5", False),
        ("abc", "5", False),  # opaque: not known to be newer
        ("5", "abc", False),
        (None, "5", False),
        ("5", None, False),
        ("", "5", False),
    ],
)
def test_provably_newer(new: str | None, old: str | None, expected: bool) -> None:
    assert provably_newer(new, old) is expected


# -- write-through after a deletion -----------------------------------------------------------


def test_a_write_through_after_a_task_deleted_event_is_refused() -> None:
    changed: list[str] = []
    cache = Cache(on_change=changed.append)
    h = TaskHandler(cache)
    h.apply("ADDED", raw(task_doc("t1", "5")))
    # the status PATCH sent before the delete returns rv 6; the DELETED event (rv 7) came first
    h.apply("DELETED", raw(task_doc("t1", "7")))
    assert not cache.put_task(decode_task(json.dumps(task_doc("t1", "6")).encode()))
    assert cache.task("t1") is None
    assert cache.count_by_state() == {}
    assert cache.unfinished_task_uids() == []
    assert changed == ["t1", "t1"]


def test_a_write_through_after_a_pod_deleted_event_is_refused() -> None:
    cache = Cache()
    h = PodHandler(cache)
    h.apply("ADDED", raw(pod_doc("p1", "5")))
    h.apply("DELETED", raw(pod_doc("p1", "8")))
    assert not cache.put_pod(decode_pod(pod_doc("p1", "6")))
    assert cache.pod_for("t1") is None
    # opaque resourceVersions: the deletion still wins
    h.apply("ADDED", raw(pod_doc("p2", "a")))
    h.apply("DELETED", raw(pod_doc("p2", "b")))
    assert not cache.put_pod(decode_pod(pod_doc("p2", "c")))


def test_the_watch_is_believed_over_a_tombstone() -> None:
    # A relist dropped p1 (not in the LIST at rv 20, opaque rv so not known newer); the
    # watch from rv 20 then reports it: it exists after all.
    cache = Cache()
    cache.put_pod(decode_pod(pod_doc("p1", "x")))
    cache.replace_pods(None, [], "20")
    assert cache.pod_for("t1") is None
    PodHandler(cache).apply("ADDED", raw(pod_doc("p1", "y")))
    assert cache.pod_for("t1") is not None
    assert len(cache.deleted_pods) == 0


def test_tombstones_are_bounded_oldest_forgotten_first() -> None:
    stones = Tombstones(limit=3)
    for n in range(5):
        stones.add(f"u{n}", str(n))
    assert len(stones) == 3
    assert not stones.buries("u0", "0")
    assert not stones.buries("u1", "1")
    assert stones.buries("u4", "4")
    assert stones.buries("u4", "3")
    assert not stones.buries("u4", "5")  # provably newer: not the deleted object
    cache = Cache(tombstones=2)
    for n in range(10):
        cache.delete_task(f"t{n}", str(n))
        cache.delete_pod(f"p{n}", str(n))
    assert len(cache.deleted_tasks) == len(cache.deleted_pods) == 2


# -- relists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cached_rv", "list_rv", "kept"),
    [
        ("25", "20", True),  # created after the snapshot: kept
        ("100", "99", True),
        ("15", "20", False),  # in the snapshot's past and missing from it: deleted
        ("20", "20", False),
        ("x", "20", False),  # opaque: the LIST wins
        ("25", "", False),
    ],
)
def test_relist_keeps_only_objects_newer_than_its_snapshot(
    cached_rv: str, list_rv: str, kept: bool
) -> None:
    cache = Cache()
    cache.put_pod(decode_pod(pod_doc("p1", cached_rv)))
    cache.put_task(decode_task(json.dumps(task_doc("t1", cached_rv)).encode()))
    cache.replace_pods(None, [], list_rv)
    cache.replace_tasks(None, [], list_rv)
    assert (cache.pod_for("t1") is not None) is kept
    assert (cache.task("t1") is not None) is kept


def test_relist_snapshot_does_not_roll_back_a_newer_write_through() -> None:
    cache = Cache()
    cache.put_task(decode_task(json.dumps(task_doc("t1", "30", {"status": "Running"})).encode()))
    TaskHandler(cache).replace(None, [raw(task_doc("t1", "20"))], "20")
    entry = cache.task("t1")
    assert isinstance(entry, Task)
    assert entry.metadata.resource_version == "30"


# -- finished Tasks ---------------------------------------------------------------------------

SCRIPT = "echo hello\n" * 5_000  # 55,000 characters


def big_task(uid: str, status: dict[str, Any] | None) -> dict[str, Any]:
    doc = task_dict(
        step("a", script=SCRIPT, env=[{"name": "X", "value": "y" * 1000}]),
        step("b", command=["sh", "-c"], args=["echo " * 500]),
        uid=uid,
        status=status,
        podTemplate={"nodeSelector": {"disk": "ssd"}},
    )
    doc["metadata"]["resourceVersion"] = "3"
    doc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(doc), "keep": "me"}
    return doc


def test_a_finished_task_keeps_metadata_and_status_only() -> None:
    cache = Cache()
    cache.put_task(decode_task(json.dumps(big_task("t1", FINISHED_STATUS)).encode()))
    entry = cache.task("t1")
    assert isinstance(entry, Task)
    assert entry.spec.steps == []
    assert entry.spec.pod_template is None
    assert entry.metadata.annotations == {"keep": "me"}
    assert entry.metadata.uid == "t1"
    assert entry.metadata.resource_version == "3"
    assert entry.status is not None
    assert entry.status.status == "Successful"
    assert len(msgspec.json.encode(entry)) < 1_000


def test_a_slim_finished_task_still_knows_when_to_go() -> None:
    # the TTL lives in the spec: slimming must keep it, or the Task would stay forever
    from taskflow.reconcile import Plan, plan
    from tests.unit.builders import SETTINGS, at

    status = {**FINISHED_STATUS, "completionTime": "2024-01-06T22:19:24Z"}
    doc = task_doc("t1", "3", status, ttlSecondsAfterFinished=60, timeout="1h")
    cache = Cache()
    cache.put_task(decode_task(json.dumps(doc).encode()))
    entry = cache.task("t1")
    assert isinstance(entry, Task)
    assert entry.spec.steps == []
    assert (entry.spec.ttl_seconds_after_finished, entry.spec.timeout) == (60, "1h")
    assert plan(entry, None, now=at(61), settings=SETTINGS) == Plan(delete_task=True)


def test_an_unfinished_task_is_kept_whole() -> None:
    task = decode_task(json.dumps(big_task("t1", {"status": "Running"})).encode())
    assert slim(task) is task
    cache = Cache()
    cache.put_task(task)
    entry = cache.task("t1")
    assert isinstance(entry, Task)
    assert entry.spec.steps[0].script == SCRIPT


def test_a_finished_undecodable_task_drops_its_spec() -> None:
    doc = big_task("t1", {"status": "Failure"})
    doc["spec"]["steps"] = "not a list"
    entry = slim(decode_task(json.dumps(doc).encode()))
    assert isinstance(entry, Undecodable)
    assert "spec" not in entry.raw
    assert entry.uid == "t1"
    assert entry.raw_status == {"status": "Failure"}
    assert entry.metadata["annotations"] == {"keep": "me"}


def test_memory_of_finished_tasks_stays_small() -> None:
    data = [json.dumps(big_task(f"t{n}", FINISHED_STATUS)).encode() for n in range(200)]
    cache = Cache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for doc in data:
            cache.put_task(decode_task(doc))
        per_task = (tracemalloc.get_traced_memory()[0] - before) / len(data)
    finally:
        tracemalloc.stop()
    # whole, each would hold two copies of its 55 kB script (spec + last-applied)
    assert per_task < 5_000, per_task


def test_a_cached_pod_keeps_what_decisions_read_not_its_scripts() -> None:
    doc = pod_doc("p1", "4")
    doc["metadata"]["annotations"] = {"api.practice.com/script-a": SCRIPT}
    doc["metadata"]["ownerReferences"] = [
        {"apiVersion": "api.practice.com/v1alpha1", "kind": "Task", "name": "t", "uid": "t1"}
    ]
    doc["metadata"]["finalizers"] = ["example.com/keep"]
    doc["status"] = {"phase": "Running"}
    cache = Cache()
    assert cache.put_pod(decode_pod(doc), from_watch=True)
    pod = cache.pod_for("t1")
    assert pod is not None
    assert (pod.metadata.annotations, pod.metadata.owner_references) == ({}, [])
    assert pod.metadata.finalizers == []
    assert pod.metadata.labels == {TASK_UID_LABEL: "t1"}
    assert (pod.metadata.name, pod.metadata.resource_version) == ("p1-pod", "4")
    assert [c.name for c in pod.spec.containers] == ["c"]
    assert pod.status.phase == "Running"


def test_cached_objects_share_equal_strings_and_keep_their_values() -> None:
    cache = Cache()
    docs = [task_doc(f"t{i}", "3", {"status": "Running", "progress": "0/1"}) for i in (1, 2)]
    for doc in docs:
        assert cache.put_task(decode_task(json.dumps(doc).encode()), from_watch=True)
    for i in (1, 2):
        assert cache.put_pod(decode_pod(pod_doc(f"p{i}", "4", owner=f"t{i}")), from_watch=True)
    one, two = cache.task("t1"), cache.task("t2")
    assert isinstance(one, Task)
    assert isinstance(two, Task)
    assert [msgspec.to_builtins(t) for t in (one, two)] == [
        msgspec.to_builtins(decode_task(json.dumps(d).encode())) for d in docs
    ]
    assert one.metadata.namespace is two.metadata.namespace
    assert one.spec.steps[0].image is two.spec.steps[0].image
    assert one.status is not None
    assert two.status is not None
    assert one.status.status is two.status.status
    first, second = cache.pod_for("t1"), cache.pod_for("t2")
    assert first is not None
    assert second is not None
    assert first.spec.containers[0].image is second.spec.containers[0].image
    assert first.metadata.labels[TASK_UID_LABEL] == "t1"


def test_the_string_pool_stays_bounded() -> None:
    pool = StringPool(size=10)
    for i in range(100):
        meta = ObjectMeta(name=f"n{i}", namespace=f"ns{i}", labels={"k": f"v{i}"})
        pool.share(meta)
        assert (meta.name, meta.namespace, meta.labels) == (f"n{i}", f"ns{i}", {"k": f"v{i}"})
    assert len(pool._strings) <= 10
