"""Engine pieces without I/O: cache, writer helpers, the reconcile step and the worker loop,
logging and the side server's address parsing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import pytest

from taskflow.api import Pod, decode_pod
from taskflow.api.task_status import TaskStatus
from taskflow.engine.cache import (
    Cache,
    PodHandler,
    TaskHandler,
    Undecodable,
    decode_task,
    is_newer,
    task_state,
)
from taskflow.engine.kube import ApiError, Kube
from taskflow.engine.queue import WorkQueue
from taskflow.engine.ratelimit import ExponentialBackoff, TokenBucket
from taskflow.engine.worker import Syncer, SyncResult, run_worker, task_logger
from taskflow.engine.writer import (
    Created,
    CreateResult,
    TaskRef,
    Writer,
    event_name,
    merge_patch,
    status_dict,
)
from taskflow.labels import TASK_UID_LABEL
from taskflow.logs import setup
from taskflow.metrics import Metrics
from taskflow.reconcile import EventSpec
from taskflow.server import parse_bind_address
from taskflow.settings import Settings
from tests.unit.builders import pod as kubelet_pod
from tests.unit.builders import step, task_dict, terminated, waiting

UID = "0b5d7f4e-0000-4000-8000-000000000001"
NOW = datetime(2024, 1, 6, 22, 30, 0, tzinfo=UTC)


def raw(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def pod_dict(name: str, uid: str, owner: str | None, rv: str = "1", ns: str = "default") -> Any:
    labels = {TASK_UID_LABEL: owner} if owner else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid,
            "resourceVersion": rv,
            "labels": labels,
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def pod(name: str, uid: str, owner: str | None, rv: str = "1", ns: str = "default") -> Pod:
    return decode_pod(pod_dict(name, uid, owner, rv, ns))


def with_rv(obj: dict[str, Any], rv: str) -> dict[str, Any]:
    obj["metadata"]["resourceVersion"] = rv
    return obj


# -- cache ----------------------------------------------------------------------------------


def test_resource_version_ordering() -> None:
    assert is_newer("11", "9")
    assert not is_newer("9", "11")
    assert not is_newer("5", "5")
    assert is_newer("abc", "5")  # opaque: a different one wins
    assert is_newer(None, "5")
    assert is_newer("5", None)


def test_task_decoding_keeps_undecodable_objects_raw() -> None:
    good = decode_task(raw(task_dict(step("a"))))
    assert not isinstance(good, Undecodable)
    assert good.metadata.uid == UID
    bad_doc = task_dict(step("a"))
    bad_doc["spec"]["steps"] = "not a list"
    bad_doc["status"] = {"status": "Running"}
    bad = decode_task(raw(bad_doc))
    assert isinstance(bad, Undecodable)
    assert bad.uid == UID
    assert bad.name == "demo"
    assert bad.namespace == "default"
    assert bad.raw_status == {"status": "Running"}
    assert "steps" in bad.error
    assert task_state(bad) == "Running"


def test_cache_notifies_and_ignores_stale_events() -> None:
    changed: list[str] = []
    cache = Cache(on_change=changed.append)
    handler = TaskHandler(cache)
    handler.apply("ADDED", msgspec.Raw(raw(with_rv(task_dict(step("a")), "5"))))
    assert changed == [UID]
    # the same resourceVersion again (e.g. the watch echo of our own write): no change
    handler.apply("MODIFIED", msgspec.Raw(raw(with_rv(task_dict(step("a")), "5"))))
    # an older one: ignored
    handler.apply("MODIFIED", msgspec.Raw(raw(with_rv(task_dict(step("b")), "4"))))
    assert changed == [UID]
    entry = cache.task(UID)
    assert entry is not None
    assert not isinstance(entry, Undecodable)
    assert entry.spec.steps[0].name == "a"
    handler.apply("DELETED", msgspec.Raw(raw(with_rv(task_dict(step("a")), "6"))))
    assert cache.task(UID) is None
    assert changed == [UID, UID]


def test_cache_indexes_pods_by_task_uid_label() -> None:
    changed: list[str] = []
    cache = Cache(on_change=changed.append)
    cache.put_pod(pod("x-pod", "p1", "t1"))
    cache.put_pod(pod("stray", "p2", None))
    assert changed == ["t1"]
    found = cache.pod_for("t1")
    assert found is not None
    assert found.metadata.name == "x-pod"
    assert cache.pod_for("t2") is None
    # relabelled to another Task: both are told
    cache.put_pod(pod("x-pod", "p1", "t2", rv="2"))
    assert changed == ["t1", "t1", "t2"]
    assert cache.pod_for("t1") is None
    # prefers the pod with the expected name
    cache.put_pod(pod("a-other", "p3", "t2"))
    named = cache.pod_for("t2", "x-pod")
    assert named is not None
    assert named.metadata.name == "x-pod"
    cache.delete_pod("p1")
    assert changed[-1] == "t2"
    still = cache.pod_for("t2", "x-pod")
    assert still is not None
    assert still.metadata.name == "a-other"


def test_relist_replaces_only_its_scope_and_reports_deletions() -> None:
    changed: list[str] = []
    cache = Cache(on_change=changed.append)
    h = PodHandler(cache)
    h.replace("ns1", [msgspec.Raw(raw(pod_dict("a", "p1", "t1", ns="ns1")))], "5")
    h.replace("ns2", [msgspec.Raw(raw(pod_dict("b", "p2", "t2", ns="ns2")))], "5")
    changed.clear()
    # relist of ns1 without p1: p1 is gone (t1 told); ns2 untouched
    h.replace("ns1", [], "10")
    assert cache.pod_for("t1") is None
    assert cache.pod_for("t2") is not None
    assert changed == ["t1"]
    # an undecodable pod in a relist is not treated as deleted
    h.replace(None, [msgspec.Raw(raw(pod_dict("b", "p2", "t2", ns="ns2"))), _bad_pod("p9")], "11")
    assert cache.pod_for("t2") is not None


def _bad_pod(uid: str) -> msgspec.Raw:
    doc = pod_dict("bad", uid, "t9")
    doc["spec"]["containers"] = "nope"
    return msgspec.Raw(raw(doc))


def test_count_by_state() -> None:
    cache = Cache()
    cache.put_task(decode_task(raw(task_dict(step("a"), uid="u1"))))
    cache.put_task(decode_task(raw(task_dict(step("a"), uid="u2", status={"status": "Running"}))))
    assert cache.count_by_state() == {"Pending": 1, "Running": 1}


def test_only_unfinished_tasks_are_resynced() -> None:
    cache = Cache()
    for uid, word in [("p", None), ("r", "Running"), ("s", "Successful"), ("f", "Failure")]:
        status = {"status": word} if word else None
        cache.put_task(decode_task(raw(task_dict(step("a"), uid=uid, status=status))))
    cache.put_task(decode_task(raw({"metadata": {"uid": "bad"}, "spec": 3})))  # undecodable
    assert sorted(cache.unfinished_task_uids()) == ["bad", "p", "r"]


# -- writer helpers -------------------------------------------------------------------------


def test_merge_patch_sets_changes_and_nulls_removed_keys() -> None:
    old = {"status": "Running", "progress": "1/2", "steps": [{"a": 1}], "x": {"k": 1, "j": 2}}
    new = {"status": "Failure", "progress": "1/2", "steps": [{"a": 2}], "x": {"k": 1}}
    assert merge_patch(old, new) == {
        "status": "Failure",
        "steps": [{"a": 2}],
        "x": {"j": None},
    }
    assert merge_patch(new, new) == {}
    assert merge_patch({}, {"a": 1}) == {"a": 1}


def test_event_names_are_deterministic_and_valid() -> None:
    a = event_name("build", UID, "StepFailed", "step x failed")
    assert a == event_name("build", UID, "StepFailed", "step x failed")
    assert a != event_name("build", UID, "StepFailed", "step y failed")
    assert a != event_name("build", "other-uid", "StepFailed", "step x failed")
    assert a.startswith("build.")
    assert len(event_name("n" * 253, UID, "R", "m")) <= 253


def test_status_dict() -> None:
    assert status_dict(None) == {}
    assert status_dict({"status": "Running"}) == {"status": "Running"}
    assert status_dict(TaskStatus(status="Running", progress="1/2")) == {
        "status": "Running",
        "progress": "1/2",
    }


def test_a_pod_of_a_deleted_same_named_task_is_waited_for_not_a_conflict() -> None:
    cache = Cache()
    writer = Writer(cast(Kube, None), cache, Metrics(), "test")
    me = TaskRef(namespace="default", name="demo", uid=UID, resource_version="1")

    def owned_by(uid: str, deleting: bool = False) -> Pod:
        doc = pod_dict("demo-pod", "p1", uid)
        doc["metadata"]["ownerReferences"] = [
            {"apiVersion": "api.practice.com/v1alpha1", "kind": "Task", "name": "demo", "uid": uid}
        ]
        if deleting:
            doc["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
        return decode_pod(doc)

    assert writer._going_away(owned_by("old-uid"), me)  # its owner is gone: GC removes it
    cache.put_task(decode_task(raw(task_dict(step("a"), uid="old-uid"))))
    assert not writer._going_away(owned_by("old-uid"), me)  # its owner still exists
    assert writer._going_away(owned_by("old-uid", deleting=True), me)
    assert not writer._going_away(pod("demo-pod", "p2", None), me)  # orphan: a real clash


def test_api_error_parses_status_body() -> None:
    body = b'{"kind":"Status","code":422,"reason":"Invalid","message":"spec is bad"}'
    err = ApiError(422, body, method="POST", path="/api/v1/pods")
    assert err.status == 422
    assert err.reason == "Invalid"
    assert err.message == "spec is bad"
    assert "422" in str(err)
    assert ApiError(502, b"<html>bad gateway").message == "<html>bad gateway"


# -- the reconcile step ---------------------------------------------------------------------


class FakeWriter(Writer):
    """Records writes; the cache is updated like the real writer does."""

    def __init__(self, cache: Cache) -> None:
        super().__init__(cast(Kube, None), cache, Metrics(), "test")
        self.created: list[dict[str, Any]] = []
        self.statuses: list[TaskStatus] = []
        self.events: list[EventSpec] = []
        self.create_result: CreateResult | None = None
        self.status_error: Exception | None = None
        self.event_error: Exception | None = None

    async def create_pod(self, task: TaskRef, manifest: dict[str, Any]) -> CreateResult:
        self.created.append(manifest)
        if self.create_result is not None:
            return self.create_result
        doc = dict(manifest)
        doc["metadata"] = {**manifest["metadata"], "uid": "pod-uid", "resourceVersion": "7"}
        p = decode_pod(doc)
        self.cache.put_pod(p)
        return CreateResult(Created.CREATED, p)

    async def patch_status(
        self, task: TaskRef, old: TaskStatus | dict[str, Any] | None, new: TaskStatus
    ) -> Any:
        if self.status_error is not None:
            raise self.status_error
        self.statuses.append(new)
        return object()

    async def record_event(self, task: TaskRef, event: EventSpec, now: datetime) -> bool:
        if self.event_error is not None and event.reason == "PodCreated":
            raise self.event_error
        self.events.append(event)
        return True


def syncer(*entries: dict[str, Any]) -> tuple[Syncer, FakeWriter, Cache]:
    cache = Cache()
    for doc in entries:
        cache.put_task(decode_task(raw(doc)))
    writer = FakeWriter(cache)
    return (
        Syncer(cache, writer, Settings(default_executor="kubelet"), Metrics(), now=lambda: NOW),
        writer,
        cache,
    )


async def test_unknown_task_is_a_no_op() -> None:
    r, w, _ = syncer()
    assert await r.sync("nope") == (SyncResult.SUCCESS, None)
    assert not w.created
    assert not w.statuses


async def test_new_task_creates_pod_then_the_woken_sync_writes_events_and_status() -> None:
    r, w, cache = syncer(task_dict(step("a"), step("b")))
    woken: list[str] = []
    cache.on_change = woken.append
    assert await r.sync(UID) == (SyncResult.SUCCESS, None)
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod"]
    assert cache.pod_for(UID) is not None  # write-through
    assert woken == [UID]  # ... which queues the Task again
    assert not w.events
    assert not w.statuses
    await r.sync(UID)
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod"]  # no second POST
    assert [e.reason for e in w.events] == ["PodCreated"]
    assert len(w.statuses) == 1
    assert w.statuses[0].pod_name == "demo-pod"


async def test_a_created_pod_missing_from_the_cache_gets_its_status_at_once() -> None:
    r, w, cache = syncer(task_dict(step("a")))
    w.create_result = CreateResult(Created.CREATED, None)  # e.g. the cache knew it deleted
    await r.sync(UID)
    assert cache.pod_for(UID) is None
    assert [e.reason for e in w.events] == ["PodCreated"]
    assert [s.pod_name for s in w.statuses] == ["demo-pod"]


async def test_an_adopted_pod_gets_its_events_and_status_at_once() -> None:
    r, w, _ = syncer(task_dict(step("a")))
    await r.sync(UID)  # created (and cached)
    w.events.clear()
    r2, w2, cache2 = syncer(task_dict(step("a")))
    pod = r.cache.pod_for(UID)
    assert pod is not None
    w2.create_result = CreateResult(Created.ADOPTED, pod)
    await r2.sync(UID)
    assert [e.reason for e in w2.events] == ["PodCreated"]
    assert [s.pod_name for s in w2.statuses] == ["demo-pod"]
    assert cache2.pod_for(UID) is None  # the fake leaves an adopted pod uncached


async def test_a_status_is_written_only_after_its_events_are_recorded() -> None:
    r, w, _ = syncer(task_dict(step("a"), step("b")))
    w.event_error = ApiError(500, b"etcd timeout")
    assert await r.sync(UID) == (SyncResult.SUCCESS, None)  # created; the rest waits
    with pytest.raises(ApiError):
        await r.sync(UID)
    assert not w.statuses  # the old status stays: the next try plans the same events
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod"]
    w.event_error = None
    await r.sync(UID)
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod"]  # no second pod
    assert [e.reason for e in w.events] == ["PodCreated"]
    assert len(w.statuses) == 1


def test_event_names_follow_the_key_not_a_final_message() -> None:
    a = EventSpec(type="Warning", reason="Failed", message="ImagePullFailed: for 5m0s", key="f")
    b = EventSpec(type="Warning", reason="Failed", message="ImagePullFailed: for 5m1s", key="f")
    assert event_name("t", UID, a.reason, a.key or a.message) == event_name(
        "t", UID, b.reason, b.key or b.message
    )


async def test_a_replica_that_may_have_lost_the_lease_writes_nothing() -> None:
    r, w, _ = syncer(task_dict(step("a")))
    r.leading = lambda: False
    outcome, delay = await r.sync(UID)
    assert outcome is SyncResult.REQUEUE_AFTER
    assert delay is not None
    assert delay > 0
    assert not w.created
    assert not w.statuses
    assert not w.events


async def test_an_adopted_pod_gets_the_status_its_create_would_have() -> None:
    r, w, _ = syncer(task_dict(step("a")))
    w.create_result = CreateResult(Created.ADOPTED, pod("demo-pod", "p", UID))
    outcome, _ = await r.sync(UID)
    assert outcome is not SyncResult.REQUEUE
    assert [s.pod_name for s in w.statuses] == ["demo-pod"]
    assert [e.reason for e in w.events] == ["PodCreated"]


async def test_a_retry_whose_status_write_failed_adopts_its_pod_and_moves_on() -> None:
    # attempt 1 failed; the reconcile that created demo-pod-2 could not write its status
    running_ = {"status": "Running", "podName": "demo-pod", "attempt": 1}
    r, w, cache = syncer(task_dict(step("a"), step("b"), retries=1, status=running_))
    t = decode_task(raw(task_dict(step("a"), step("b"))))
    assert not isinstance(t, Undecodable)
    failed = kubelet_pod(
        t, [terminated("a", 3, 1, 2)], [waiting("b", "PodInitializing")], phase="Failed"
    )
    meta = msgspec.structs.replace(failed.metadata, uid="pod-1-uid", resource_version="3")
    cache.put_pod(msgspec.structs.replace(failed, metadata=meta))
    w.status_error = ApiError(409, b"the object has been modified")
    with pytest.raises(ApiError):
        await r.sync(UID)
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod-2"]
    w.status_error = None
    second = cache.pod_for(UID, "demo-pod-2")
    assert second is not None
    w.create_result = CreateResult(Created.ADOPTED, second)  # the POST now answers 409
    for _ in range(3):
        if w.statuses:
            break
        outcome, _ = await r.sync(UID)
        assert outcome is not SyncResult.REQUEUE  # no hot loop
    [status] = w.statuses
    assert (status.attempt, status.pod_name) == (2, "demo-pod-2")
    assert [a.reason for a in status.attempts] == ["StepFailed"]
    assert [m["metadata"]["name"] for m in w.created] == ["demo-pod-2", "demo-pod-2"]


async def test_rejected_create_fails_the_task_with_the_message() -> None:
    r, w, _ = syncer(task_dict(step("a")))
    w.create_result = CreateResult(Created.REJECTED, message='pods "demo-pod" is invalid: nope')
    await r.sync(UID)
    (status,) = w.statuses
    assert status.status == "Failure"
    cond = status.condition()
    assert cond is not None
    assert cond.reason == "InvalidPodSpec"
    assert "nope" in (cond.message or "")
    assert [e.reason for e in w.events] == ["Failed"]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [(Created.CONFLICT, "PodNameTaken"), (Created.BUSY, "WaitingForOldPod")],
)
async def test_a_name_held_by_another_pod_waits_pending_and_backs_off(
    outcome: Created, reason: str
) -> None:
    r, w, _ = syncer(task_dict(step("a")))
    w.create_result = CreateResult(outcome, pod("demo-pod", "p", "someone-else"))
    assert await r.sync(UID) == (SyncResult.REQUEUE_AFTER, 1.0)
    (status,) = w.statuses
    assert (status.status, status.pod_name) == ("Pending", None)
    cond = status.condition()
    assert cond is not None
    assert cond.reason == reason
    assert "demo-pod" in (cond.message or "")
    assert [e.reason for e in w.events] == [reason]


async def test_create_refused_for_now_stays_pending_and_is_retried() -> None:
    r, w, _ = syncer(task_dict(step("a")))
    w.create_result = CreateResult(Created.REFUSED, message='pods "demo-pod" is forbidden: quota')
    assert await r.sync(UID) == (SyncResult.ERROR, None)
    (status,) = w.statuses
    assert (status.status, status.pod_name) == ("Pending", None)
    cond = status.condition()
    assert cond is not None
    assert (cond.reason, cond.message) == (
        "FailedCreate",
        'cannot create the pod: pods "demo-pod" is forbidden: quota',
    )
    assert [e.reason for e in w.events] == ["FailedCreate"]


async def test_undecodable_task_fails_with_invalid_spec() -> None:
    doc = task_dict(step("a"))
    doc["spec"]["steps"] = 42
    r, w, _ = syncer(doc)
    await r.sync(UID)
    assert not w.created
    (status,) = w.statuses
    assert status.status == "Failure"
    cond = status.condition()
    assert cond is not None
    assert cond.reason == "InvalidSpec"


async def test_finished_task_gets_no_writes() -> None:
    done = {"status": "Successful", "podName": "demo-pod", "progress": "1/1"}
    r, w, _ = syncer(task_dict(step("a"), status=done))
    assert await r.sync(UID) == (SyncResult.SUCCESS, None)
    assert not w.created
    assert not w.statuses
    assert not w.events


@pytest.mark.parametrize("failure", ["exception", "refused pod"])
async def test_worker_retries_errors_with_backoff_and_counts_results(failure: str) -> None:
    r, w, _ = syncer(task_dict(step("a")))
    if failure == "exception":
        w.status_error = ApiError(409, b'{"message":"conflict"}')
    else:
        w.create_result = CreateResult(Created.REFUSED, message="forbidden: exceeded quota")
    metrics = r.metrics
    q: WorkQueue[str] = WorkQueue(
        limiter=TokenBucket(0, 1), backoff=ExponentialBackoff(0.01, 0.05, jitter=0.0)
    )
    r.cache.on_change = q.add  # as the operator wires it: the created pod wakes the Task
    worker = asyncio.create_task(run_worker(q, r, metrics))
    q.add(UID)
    for _ in range(200):
        if metrics.reconcile_count("error") >= 2:
            break
        await asyncio.sleep(0.005)
    assert metrics.reconcile_count("error") >= 2
    assert q.num_requeues(UID) >= 2

    def done() -> float:
        return metrics.reconcile_count("success") + metrics.reconcile_count("requeue_after")

    before = done()  # the create itself may have been one
    w.status_error = None
    w.create_result = None
    for _ in range(200):
        if done() > before:
            break
        await asyncio.sleep(0.005)
    assert q.num_requeues(UID) == 0  # forgotten after a success
    errors = metrics.registry.get_sample_value(
        "controller_runtime_reconcile_errors_total", {"controller": "task"}
    )
    assert errors is not None
    assert errors >= 2
    q.shutdown()
    await asyncio.wait_for(worker, 1)


# -- logs and server ------------------------------------------------------------------------


def test_reconcile_log_lines_carry_namespace_name_uid() -> None:
    buf = io.StringIO()
    setup("json", "info", stream=buf)
    task_logger("ns1", "build", UID).info("created pod %s", "build-pod")
    doc = json.loads(buf.getvalue())
    assert doc["msg"] == "created pod build-pod"
    assert doc["namespace"] == "ns1"
    assert doc["name"] == "build"
    assert doc["uid"] == UID
    assert doc["level"] == "info"
    assert doc["logger"] == "taskflow.reconcile"

    buf = io.StringIO()
    setup("text", "info", stream=buf)
    task_logger("ns1", "build", UID).warning("oops")
    line = buf.getvalue()
    assert "WARNING" in line
    assert f"namespace=ns1 name=build uid={UID}" in line
    setup("text", "warning", stream=io.StringIO())
    logging.getLogger().handlers.clear()


def test_parse_bind_address() -> None:
    assert parse_bind_address(":8080") == (None, 8080)
    assert parse_bind_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind_address("[::1]:9090") == ("::1", 9090)
    assert parse_bind_address("0") is None
    for bad in ("8080", ":http", "x:70000"):
        with pytest.raises(ValueError, match="bind address"):
            parse_bind_address(bad)
