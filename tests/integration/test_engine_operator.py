"""The engine against a real kube-apiserver (no mocks).

There is no kubelet at this tier: the test plays the kubelet by writing the pod's status
through the ``pods/status`` subresource with the admin kubeconfig. The operator runs
in-process (anyio task group) with the admin kubeconfig, scoped to a per-test namespace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import msgspec
import pytest

from taskflow.engine.kube import ApiError, Kube, connect
from taskflow.engine.leader import LeaseConfig
from taskflow.engine.operator import Operator, OperatorConfig
from taskflow.engine.resources import Resource
from taskflow.engine.watch import Reflector
from taskflow.labels import MANAGED_BY_LABEL, TASK_NAME_LABEL, TASK_UID_LABEL
from taskflow.render import render_pod
from tests.cluster.fixtures import kubectl, table
from tests.integration.kube_sim import (
    KUBELET,
    MERGE,
    NO_NODE,
    TASKS,
    Obj,
    api_calls,
    create_task,
    dec,
    enc,
    events_of,
    eventually,
    get_task,
    kubelet,
    operator,
    pods_of,
    sa_kubeconfig,
    status_is,
    steps,
    task_status,
    the_pod,
    ts,
)

pytestmark = pytest.mark.integration


def reconciled(op: Operator) -> float:
    """Reconciles that did their job (a Task with a timeout asks to be looked at again)."""
    return op.metrics.reconcile_count("success") + op.metrics.reconcile_count("requeue_after")


class TaskChanges:
    def __init__(self) -> None:
        self.statuses: list[Obj] = []


@asynccontextmanager
async def watch_task(admin: Kube, ns: str, name: str) -> AsyncIterator[TaskChanges]:
    """Record the status of every MODIFIED event of Task ``name`` while the block runs."""
    changes = TaskChanges()
    listed = dec(await admin.request("GET", TASKS.format(ns=ns), query={"limit": 1}))
    query = {
        "watch": "true",
        "resourceVersion": listed["metadata"]["resourceVersion"],
        "fieldSelector": f"metadata.name={name}",
    }

    async def run(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with admin.stream(TASKS.format(ns=ns), query=query, read_timeout=300) as body:
            task_status.started()
            async for line in body:
                event = dec(line)
                if event["type"] == "MODIFIED":
                    changes.statuses.append(event["object"].get("status") or {})

    async with anyio.create_task_group() as tg:
        await tg.start(run)
        yield changes
        tg.cancel_scope.cancel()


# -- tests ----------------------------------------------------------------------------------


async def test_task_runs_to_success_with_events_once_and_no_extra_writes(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns) as op, watch_task(admin, ns, "build") as changes:
        # not alphabetical on purpose: results are matched by name, not position
        task = await create_task(admin, ns, "build", steps("zeta", "alpha", "mid"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)

        meta = pod["metadata"]
        assert meta["name"] == "build-pod"
        assert meta["labels"][MANAGED_BY_LABEL] == "taskflow"
        assert meta["labels"][TASK_NAME_LABEL] == "build"
        assert meta["labels"][TASK_UID_LABEL] == uid
        (owner,) = meta["ownerReferences"]
        assert owner["uid"] == uid
        assert owner["kind"] == "Task"
        assert owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["zeta", "alpha"]
        assert [c["name"] for c in pod["spec"]["containers"]] == ["mid"]

        st = await status_is(admin, ns, "build", status="Pending", podName="build-pod")

        await kubelet(admin, pod, "Pending", {"zeta": ("running", 1)})
        await status_is(admin, ns, "build", status="Running", progress="1/3")

        await kubelet(
            admin, pod, "Pending", {"zeta": ("terminated", 0, 1, 5), "alpha": ("running", 6)}
        )
        await status_is(admin, ns, "build", status="Running", progress="2/3")

        done = {"zeta": ("terminated", 0, 1, 5), "alpha": ("terminated", 0, 6, 9)}
        await kubelet(admin, pod, "Running", {**done, "mid": ("running", 10)})
        await status_is(admin, ns, "build", status="Running", progress="3/3")

        await kubelet(admin, pod, "Succeeded", {**done, "mid": ("terminated", 0, 10, 66)})
        st = await status_is(admin, ns, "build", status="Successful")
        assert st["progress"] == "3/3"
        assert st["duration"] == "1m5s"
        assert st["startTime"] == ts(1)
        assert st["completionTime"] == ts(66)
        assert [s["name"] for s in st["steps"]] == ["zeta", "alpha", "mid"]
        assert all(s["exitCode"] == 0 for s in st["steps"])
        cond = next(c for c in st["conditions"] if c["type"] == "Succeeded")
        assert cond["status"] == "True"

        # Idempotence: poke the pod (a watch event -> a reconcile) and let time pass; the
        # finished Task must not be written again, and there is still exactly one pod.
        rv = (await get_task(admin, ns, "build"))["metadata"]["resourceVersion"]
        reconciles = op.metrics.reconcile_count("success")
        await admin.request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/pods/build-pod",
            body=enc.encode({"metadata": {"annotations": {"poke": "1"}}}),
            content_type=MERGE,
        )
        await eventually(lambda: op.metrics.reconcile_count("success") > reconciles)
        await anyio.sleep(0.5)
        assert (await get_task(admin, ns, "build"))["metadata"]["resourceVersion"] == rv
        assert len(await pods_of(admin, ns, uid)) == 1

        # every status patch changed the Task (a no-op patch would not show up as an event)
        assert api_calls(op, "patch", "tasks/status") == len(changes.statuses)
        words = [(st.get("status"), st.get("progress")) for st in changes.statuses]
        for want in [("Pending", "0/3"), ("Running", "1/3"), ("Running", "2/3")]:
            assert want in words
        assert words[-1] == ("Successful", "3/3")
        assert api_calls(op, "create", "pods") == 1

        events = await events_of(admin, ns, uid)
        seen = [(e["reason"], e["message"]) for e in events]
        assert len(seen) == len(set(seen)), f"duplicate events: {seen}"
        assert all(e.get("count", 1) == 1 for e in events)
        # (on the full tier the scheduler may call the pod Unschedulable before the test binds
        # it: a legitimate extra Warning)
        reasons = sorted(r for r, _ in seen if r != "Unschedulable")
        assert reasons == sorted(
            ["PodCreated", "Succeeded"] + ["StepStarted"] * 3 + ["StepSucceeded"] * 3
        )
        ev = events[0]
        assert ev["source"]["component"] == "taskflow"
        assert ev["involvedObject"]["kind"] == "Task"
        assert ev["involvedObject"]["name"] == "build"
        assert ev["involvedObject"]["apiVersion"] == "api.practice.com/v1alpha1"

        # the side server
        port = op.server.port
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200, await resp.text()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
        assert 'controller_runtime_reconcile_total{controller="task",result="success"}' in text
        assert "workqueue_depth" in text
        assert 'taskflow_tasks{status="Successful"} 1.0' in text
        assert 'taskflow_task_duration_seconds_count{result="Successful"} 1.0' in text
        assert reconciled(op) >= 6


async def test_failing_step_names_step_and_exit_code(admin: Kube, ns: str, kubeconfig: str) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "flaky", steps("fetch", "compile", "ship"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        await kubelet(
            admin,
            pod,
            "Failed",
            {"fetch": ("terminated", 0, 1, 2), "compile": ("terminated", 3, 3, 4)},
        )
        st = await status_is(admin, ns, "flaky", status="Failure")
        cond = next(c for c in st["conditions"] if c["type"] == "Succeeded")
        assert cond["status"] == "False"
        assert cond["reason"] == "StepFailed"
        assert "compile" in cond["message"]
        assert "3" in cond["message"]
        by_name = {s["name"]: s for s in st["steps"]}
        assert by_name["compile"]["exitCode"] == 3
        assert by_name["ship"]["state"] == "NotRun"
        await anyio.sleep(0.3)
        events = await events_of(admin, ns, uid)
        reasons = [e["reason"] for e in events]
        assert reasons.count("StepFailed") == 1
        assert reasons.count("Failed") == 1
        assert len(await pods_of(admin, ns, uid)) == 1


async def test_pod_deleted_fails_the_task_and_is_not_recreated(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns) as op:
        task = await create_task(admin, ns, "victim", steps("one", "two"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        await status_is(admin, ns, "victim", podName=pod["metadata"]["name"])
        await admin.request(
            "DELETE",
            f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}",
            query={"gracePeriodSeconds": 0},
        )
        st = await status_is(admin, ns, "victim", status="Failure")
        cond = next(c for c in st["conditions"] if c["type"] == "Succeeded")
        assert cond["reason"] == "PodDeleted"
        await anyio.sleep(0.5)
        assert await pods_of(admin, ns, uid) == []
        assert api_calls(op, "create", "pods") == 1


async def test_restart_mid_run_creates_no_second_pod_and_continues(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "long", steps("a", "b", "c"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        await kubelet(admin, pod, "Pending", {"a": ("running", 1)})
        await status_is(admin, ns, "long", status="Running", progress="1/3")
    # the operator is down; the pod moves on meanwhile
    await kubelet(admin, pod, "Pending", {"a": ("terminated", 0, 1, 2), "b": ("running", 3)})
    async with operator(kubeconfig, ns) as op:
        await status_is(admin, ns, "long", status="Running", progress="2/3")
        pods = await pods_of(admin, ns, uid)
        assert [p["metadata"]["uid"] for p in pods] == [pod["metadata"]["uid"]]
        assert api_calls(op, "create", "pods") == 0
        done = {"a": ("terminated", 0, 1, 2), "b": ("terminated", 0, 3, 4)}
        await kubelet(admin, pod, "Succeeded", {**done, "c": ("terminated", 0, 5, 6)})
        await status_is(admin, ns, "long", status="Successful")
    reasons = [e["reason"] for e in await events_of(admin, ns, uid)]
    assert reasons.count("PodCreated") == 1
    assert reasons.count("StepStarted") == 3


async def test_events_are_recorded_before_the_status_that_follows_them(
    admin: Kube, ns: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Events sent concurrently with the status patch would let a reader (or an
    # operator stopped right then) see a status whose events were still in flight, and
    # lose them. Slow every event POST down and stop the operator the moment the final
    # status is visible: every transition's Event must already be there, once.
    async with operator(kubeconfig, ns) as op:
        real = op.writer.record_event

        async def slow(*args: Any) -> bool:
            await anyio.sleep(0.3)
            return await real(*args)

        monkeypatch.setattr(op.writer, "record_event", slow)
        task = await create_task(admin, ns, "slow", steps("a", "b"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        await kubelet(admin, pod, "Pending", {"a": ("running", 1)})
        await status_is(admin, ns, "slow", status="Running")
        done = {"a": ("terminated", 0, 1, 2), "b": ("terminated", 0, 3, 4)}
        await kubelet(admin, pod, "Succeeded", done)
        await status_is(admin, ns, "slow", status="Successful")
    reasons = sorted(e["reason"] for e in await events_of(admin, ns, uid))
    expected = ["PodCreated", "Succeeded"] + ["StepStarted"] * 2 + ["StepSucceeded"] * 2
    assert [r for r in reasons if r != "Unschedulable"] == sorted(expected)


async def test_a_failed_event_post_is_retried_before_the_status_moves_on(
    admin: Kube, ns: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with operator(kubeconfig, ns) as op:
        real = op.writer.record_event
        refused: list[str] = []

        async def flaky(ref: Any, event: Any, now: Any) -> bool:
            if event.reason == "StepStarted" and not refused:
                refused.append(event.message)
                raise ApiError(500, b"etcdserver: request timed out")
            return bool(await real(ref, event, now))

        monkeypatch.setattr(op.writer, "record_event", flaky)
        task = await create_task(admin, ns, "flaky", steps("a"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        await kubelet(admin, pod, "Pending", {"a": ("running", 1)})
        await status_is(admin, ns, "flaky", status="Running")
        assert refused, "the failing POST was never tried"
        await kubelet(admin, pod, "Succeeded", {"a": ("terminated", 0, 1, 2)})
        await status_is(admin, ns, "flaky", status="Successful")
    seen = [(e["reason"], e["message"]) for e in await events_of(admin, ns, uid)]
    assert len(seen) == len(set(seen)), f"duplicate events: {seen}"
    assert sorted(r for r, _ in seen if r != "Unschedulable") == sorted(
        ["PodCreated", "StepStarted", "StepSucceeded", "Succeeded"]
    )


async def test_existing_pod_is_adopted_when_ours(admin: Kube, ns: str, kubeconfig: str) -> None:
    # A pod that is ours (the operator died between create and status patch). A pod on the
    # name that is not ours: test_engine_create_path.py.
    from taskflow import api

    ours = await create_task(admin, ns, "ours", steps("x"))
    manifest = render_pod(api.decode_task(ours), KUBELET)
    await admin.request("POST", f"/api/v1/namespaces/{ns}/pods", body=enc.encode(manifest))

    async with operator(kubeconfig, ns) as op:
        st = await status_is(admin, ns, "ours", podName="ours-pod", status="Pending")
        assert st["podName"] == "ours-pod"
        assert len(await pods_of(admin, ns, ours["metadata"]["uid"])) == 1
        # "ours" is in the cache from the LIST: no create attempted
        assert api_calls(op, "create", "pods") == 0


async def test_task_deleted_and_recreated_under_the_same_name_gets_a_new_pod(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        first = await create_task(admin, ns, "again", steps("s"))
        # not bound (no pods_of -> the_pod): an unscheduled pod is deleted at once
        old: Obj = await eventually(_first_pod(admin, ns, first["metadata"]["uid"]))
        # a finalizer keeps the old pod around (Terminating) for as long as we like
        old_path = f"/api/v1/namespaces/{ns}/pods/{old['metadata']['name']}"
        hold = {"metadata": {"finalizers": ["taskflow.test/hold"]}}
        await admin.request("PATCH", old_path, body=enc.encode(hold), content_type=MERGE)
        await admin.request(
            "DELETE",
            f"{TASKS.format(ns=ns)}/again",
            body=enc.encode({"propagationPolicy": "Background"}),
        )
        second = await create_task(admin, ns, "again", steps("s"))

        async def terminating() -> bool:
            pod = dec(await admin.request("GET", old_path))
            return bool(pod["metadata"].get("deletionTimestamp"))

        # The garbage collector starts watching a new CRD's kind only at its next discovery
        # resync (every 30 s): on a fresh cluster the old pod is deleted ~45 s late.
        await eventually(terminating, within=90)
        # the new Task waits (retrying with backoff) instead of failing on the clash
        st = await status_is(admin, ns, "again", status="Pending")
        assert st["conditions"][0]["reason"] == "WaitingForOldPod", st
        assert await pods_of(admin, ns, second["metadata"]["uid"]) == []
        release = {"metadata": {"finalizers": None}}
        await admin.request("PATCH", old_path, body=enc.encode(release), content_type=MERGE)
        # up to 90 s of waiting: the backoff has reached its 30 s cap
        new: Obj = await eventually(_first_pod(admin, ns, second["metadata"]["uid"]), 45)
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        st = await status_is(admin, ns, "again", status="Pending", podName="again-pod")
        assert "conditions" in st


def _first_pod(admin: Kube, ns: str, uid: str) -> Callable[[], Awaitable[Obj | None]]:
    async def check() -> Obj | None:
        pods = await pods_of(admin, ns, uid)
        return pods[0] if pods else None

    return check


async def test_pod_rejected_by_api_server_fails_with_its_message(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    bad = [
        {
            "name": "greedy",
            "image": "busybox",
            "command": ["true"],
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
        }
    ]
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "greedy", bad)
        st = await status_is(admin, ns, "greedy", status="Failure")
        cond = next(c for c in st["conditions"] if c["type"] == "Succeeded")
        assert cond["reason"] == "InvalidPodSpec"
        assert "limit" in cond["message"]
        assert await pods_of(admin, ns, task["metadata"]["uid"]) == []
        wide = await anyio.to_thread.run_sync(
            lambda: kubectl(kubeconfig, "get", "task", "greedy", "-n", ns, "-o", "wide").stdout
        )
        [cells] = table(wide)
        assert list(cells)[-3:] == ["REASON", "POD", "ATTEMPT"], wide
        assert (cells["STATUS"], cells["REASON"], cells["POD"]) == (
            "Failure",
            "InvalidPodSpec",
            "",  # rejected: there is no pod
        ), wide


class _Recorder:
    def __init__(self) -> None:
        self.replaced: list[list[str]] = []
        self.events: list[tuple[str, str]] = []

    def replace(
        self, namespace: str | None, items: list[msgspec.Raw], resource_version: str
    ) -> None:
        self.replaced.append([dec(bytes(i))["metadata"]["name"] for i in items])

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        self.events.append((event_type, dec(bytes(raw))["metadata"]["name"]))


async def test_pod_refused_by_a_quota_waits_pending_then_runs_when_it_allows(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    quotas = f"/api/v1/namespaces/{ns}/resourcequotas"
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    await admin.request("POST", quotas, body=enc.encode(quota))
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "quota", steps("s"))
        st = await status_is(admin, ns, "quota", status="Pending")
        cond = st["conditions"][0]
        assert cond["reason"] == "FailedCreate", st
        # "exceeded quota: no-pods, ..." (or "status unknown for quota" if that is first)
        assert cond["message"].startswith("cannot create the pod: pods "), cond
        assert "quota: no-pods" in cond["message"], cond
        assert "podName" not in st
        warned: list[str] = await eventually(_reasons_of(admin, ns, task["metadata"]["uid"]))
        assert "FailedCreate" in warned
        await anyio.sleep(1)  # retried with backoff meanwhile: still Pending, nothing else
        assert await pods_of(admin, ns, task["metadata"]["uid"]) == []
        assert (await task_status(admin, ns, "quota"))["status"] == "Pending"
        await admin.request("DELETE", f"{quotas}/no-pods")
        # the backoff has grown to a few seconds at most by now
        pod: Obj = await eventually(_first_pod(admin, ns, task["metadata"]["uid"]), within=60)
        assert pod["metadata"]["name"] == "quota-pod"
        st = await status_is(admin, ns, "quota", status="Pending", podName="quota-pod")
        assert st["conditions"][0]["reason"] != "FailedCreate"


def _reasons_of(admin: Kube, ns: str, uid: str) -> Callable[[], Awaitable[list[str] | None]]:
    async def check() -> list[str] | None:
        return [e.get("reason", "") for e in await events_of(admin, ns, uid)] or None

    return check


async def test_resync_rechecks_unfinished_tasks_without_any_event(
    admin: Kube, ns: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    over_limit = [
        {**steps("greedy")[0], "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
    ]
    async with operator(kubeconfig, ns, resync_period=0.3) as op:
        reconciled: list[str] = []
        original = op.syncer.sync

        async def recording(uid: str) -> Any:
            reconciled.append(uid)
            return await original(uid)

        monkeypatch.setattr(op.syncer, "sync", recording)
        waiting = await create_task(admin, ns, "waits", steps("s"))
        failed = await create_task(admin, ns, "greedy", over_limit)
        await status_is(admin, ns, "greedy", status="Failure")
        await status_is(admin, ns, "waits", status="Pending", podName="waits-pod")
        await anyio.sleep(0.5)  # let the writes' own watch events settle
        reconciled.clear()
        await anyio.sleep(2)  # nothing changes in the cluster meanwhile
        assert reconciled.count(waiting["metadata"]["uid"]) >= 3, reconciled
        assert failed["metadata"]["uid"] not in reconciled  # finished: never rechecked


async def test_watch_from_compacted_resource_version_gets_410_and_relists(
    admin: Kube, ns: str
) -> None:
    await create_task(admin, ns, "early", steps("s"))
    rec = _Recorder()
    reflector = Reflector(
        admin,
        Resource("api.practice.com", "v1alpha1", "tasks"),
        rec,
        namespace=ns,
        start_resource_version="1",  # long gone: the server answers 410 Expired
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(reflector.run)
        with anyio.fail_after(10):
            await reflector.synced.wait()
        assert rec.replaced == [["early"]]
        assert reflector.relists == 1
        await create_task(admin, ns, "late", steps("s"))
        await eventually(lambda: ("ADDED", "late") in rec.events)
        tg.cancel_scope.cancel()
    assert reflector.errors == 0


async def _run_scoped(
    op: Operator,
    scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[Operator] = anyio.TASK_STATUS_IGNORED,
) -> None:
    try:
        with scope:
            await op.run(task_status=task_status)
    finally:
        await op.kube.close()


async def start_operator(
    tg: anyio.abc.TaskGroup, kubeconfig: str, namespace: str, **overrides: Any
) -> tuple[Operator, anyio.CancelScope]:
    """Start an engine in ``tg``; cancelling the returned scope stops it (like SIGTERM)."""
    kube = await connect(kubeconfig=kubeconfig)
    cfg: dict[str, Any] = {
        "namespaces": (namespace,),
        "bind_address": "127.0.0.1:0",
        "qps": 0.0,
        "settings": KUBELET,
    }
    cfg.update(overrides)
    op = Operator(kube, OperatorConfig(**cfg))
    scope = anyio.CancelScope()
    await tg.start(_run_scoped, op, scope)
    return op, scope


async def test_leader_election_one_reconciles_the_other_takes_over(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    lease = LeaseConfig(
        namespace=ns, name="taskflow-test", duration=4.0, renew_deadline=3.0, retry_period=0.3
    )
    async with anyio.create_task_group() as tg:
        first, stop_first = await start_operator(tg, kubeconfig, ns, identity="first", lease=lease)
        await eventually(lambda: first.is_leader)
        second, stop_second = await start_operator(
            tg, kubeconfig, ns, identity="second", lease=lease
        )
        await eventually(lambda: second.synced)

        task = await create_task(admin, ns, "one", steps("s"))
        await the_pod(admin, ns, task["metadata"]["uid"])
        await status_is(admin, ns, "one", status="Pending")
        await anyio.sleep(0.5)
        assert not second.is_leader
        assert reconciled(second) == 0
        assert reconciled(first) >= 1
        gauge = {"name": "taskflow-test"}
        assert first.metrics.registry.get_sample_value("leader_election_master_status", gauge) == 1
        assert second.metrics.registry.get_sample_value("leader_election_master_status", gauge) == 0
        # a standby is ready (caches synced) although it does not reconcile
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{second.server.port}/readyz") as resp,
        ):
            assert resp.status == 200

        # stop the leader: it releases the lease and the standby takes over at once
        t_stop = time.monotonic()
        stop_first.cancel()
        await eventually(lambda: not first.alive)
        await eventually(lambda: second.is_leader, within=5)
        takeover = time.monotonic() - t_stop
        assert takeover < 2.0, f"takeover took {takeover:.1f}s (lease duration 4s)"
        lease_obj = dec(
            await admin.request(
                "GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/taskflow-test"
            )
        )
        assert lease_obj["spec"]["holderIdentity"] == "second"

        task2 = await create_task(admin, ns, "two", steps("s"))
        await the_pod(admin, ns, task2["metadata"]["uid"])
        await status_is(admin, ns, "two", status="Pending")
        assert reconciled(second) >= 1
        stop_second.cancel()
    lease_obj = dec(
        await admin.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/taskflow-test"
        )
    )
    assert lease_obj["spec"]["holderIdentity"] == ""  # released on shutdown


#: docs/design.md's RBAC table, verbatim: the operator may make no other API call.
DESIGN_RBAC_RULES = [
    {
        "apiGroups": ["api.practice.com"],
        "resources": ["tasks"],
        "verbs": ["get", "list", "watch", "delete"],
    },
    {"apiGroups": ["api.practice.com"], "resources": ["tasks/status"], "verbs": ["get", "patch"]},
    {"apiGroups": ["api.practice.com"], "resources": ["tasks/finalizers"], "verbs": ["update"]},
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    },
]


async def restricted_kubeconfig(admin: Kube, kubeconfig: str, ns: str, path: Path) -> str:
    """A kubeconfig for a ServiceAccount bound to exactly DESIGN_RBAC_RULES in ``ns``."""
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    objs: list[tuple[str, Obj]] = [
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "taskflow"}},
        ),
        (
            f"{rbac}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "taskflow"},
                "rules": DESIGN_RBAC_RULES,
            },
        ),
        (
            f"{rbac}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "taskflow"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "taskflow",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "taskflow", "namespace": ns}],
            },
        ),
    ]
    for collection, body in objs:
        await admin.request("POST", collection, body=enc.encode(body))
    return await sa_kubeconfig(admin, kubeconfig, ns, "taskflow", path)


async def test_runs_with_exactly_the_rbac_of_the_design_table(
    admin: Kube, ns: str, kubeconfig: str, tmp_path: Path
) -> None:
    sa_config = await restricted_kubeconfig(admin, kubeconfig, ns, tmp_path / "sa.kubeconfig")
    # every write path: create (+ finalizers for the ownerRef), 409 -> GET (a squatter),
    # 422 -> rejected, status patches, events, and leader election
    squatter = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "squatted-pod"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": NO_NODE},
    }
    await admin.request("POST", f"/api/v1/namespaces/{ns}/pods", body=enc.encode(squatter))
    await create_task(admin, ns, "squatted", steps("x"))
    bad = [
        {
            "name": "greedy",
            "image": "busybox",
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
        }
    ]
    await create_task(admin, ns, "rejected", bad)
    async with operator(sa_config, ns, lease=LeaseConfig(namespace=ns, retry_period=0.5)) as op:
        task = await create_task(admin, ns, "fresh", steps("a", "b"))
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        await kubelet(
            admin, pod, "Succeeded", {"a": ("terminated", 0, 1, 2), "b": ("terminated", 0, 3, 4)}
        )
        await status_is(admin, ns, "fresh", status="Successful")
        st = await status_is(admin, ns, "squatted", status="Pending")
        assert st["conditions"][0]["reason"] == "PodNameTaken", st
        await status_is(admin, ns, "rejected", status="Failure")
        forbidden = [
            s
            for metric in op.metrics.registry.collect()
            for s in metric.samples
            if s.name == "taskflow_api_requests_total" and s.labels["code"] in ("401", "403")
        ]
        assert forbidden == []
        assert all(r.errors == 0 for r in op.reflectors), [r.last_error for r in op.reflectors]
        assert op.is_leader
        assert api_calls(op, "get", "pods") >= 1  # the 409 path ran
