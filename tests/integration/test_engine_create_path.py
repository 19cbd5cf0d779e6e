"""The create path against a real kube-apiserver: a pod name held by a pod that is not the
Task's (someone else's, or an old one stuck Terminating), and a pod that ended without
reporting its steps. Each ends in a bounded, truthful status."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from taskflow.engine.kube import Kube
from taskflow.labels import TASK_UID_LABEL
from tests.integration.kube_sim import (
    MERGE,
    NO_NODE,
    Obj,
    api_calls,
    bind,
    create_task,
    dec,
    enc,
    events_of,
    eventually,
    operator,
    pods_of,
    status_is,
    steps,
    task_status,
    the_pod,
    ts,
    write_pod_status,
)

pytestmark = pytest.mark.integration

PODS = "/api/v1/namespaces/{ns}/pods"


async def squat(admin: Kube, ns: str, name: str, **meta: Any) -> Obj:
    """A pod named ``name`` that no taskflow Task owns (no kubelet runs it)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": NO_NODE},
    }
    return dec(await admin.request("POST", PODS.format(ns=ns), body=enc.encode(body)))


def condition(st: Obj) -> Obj:
    cond: Obj = next(c for c in st.get("conditions", []) if c["type"] == "Succeeded")
    return cond


async def reasons_of(admin: Kube, ns: str, uid: str) -> list[str]:
    return sorted(e.get("reason", "") for e in await events_of(admin, ns, uid))


async def test_someone_elses_pod_on_the_name_makes_the_task_wait_then_run(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    # Someone else's pod is theirs to delete: the Task waits (Pending, saying why), not
    # Failure/InvalidPodSpec at once, and its pod comes once the name is free
    await squat(admin, ns, "theirs-pod", labels={"app": "other"})
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "theirs", steps("y"))
        uid = task["metadata"]["uid"]
        st = await status_is(admin, ns, "theirs", status="Pending")
        cond = condition(st)
        assert cond["reason"] == "PodNameTaken", st
        assert 'pod "theirs-pod" already exists' in cond["message"]
        assert "not created by taskflow" in cond["message"]
        assert "delete that pod" in cond["message"]
        assert "podName" not in st
        assert await pods_of(admin, ns, uid) == []
        await admin.request(
            "DELETE", f"{PODS.format(ns=ns)}/theirs-pod", query={"gracePeriodSeconds": 0}
        )
        # the wait backs off from 1 s: a name freed early is taken within seconds
        pod = await the_pod(admin, ns, uid)
        assert pod["metadata"]["name"] == "theirs-pod"
        st = await status_is(admin, ns, "theirs", podName="theirs-pod", status="Pending")
        assert condition(st)["reason"] == "Pending"
        assert await reasons_of(admin, ns, uid) == ["PodCreated", "PodNameTaken"]


async def test_someone_elses_pod_on_the_name_fails_the_task_at_its_timeout(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    await squat(admin, ns, "kept-pod", labels={TASK_UID_LABEL: "not-a-task"})
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "kept", steps("y"), timeout="6s")
        uid = task["metadata"]["uid"]
        st = await status_is(admin, ns, "kept", status="Failure")
        cond = condition(st)
        assert cond["reason"] == "PodNameTaken", st
        assert f"labelled {TASK_UID_LABEL}=not-a-task" in cond["message"]
        assert "gave up at the Task's timeout (6s, spec.timeout)" in cond["message"]
        assert "delete that pod" not in cond["message"]  # a finished Task never runs
        assert await pods_of(admin, ns, uid) == []
        assert await reasons_of(admin, ns, uid) == ["Failed", "PodNameTaken"]


async def test_an_old_pod_stuck_terminating_is_waited_for_with_backoff_until_the_timeout(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    # A pod stuck Terminating: a status that says so and retries that back off, not silence
    # and a POST + GET every second for as long as it lasts
    path = f"{PODS.format(ns=ns)}/stuck-pod"
    await squat(admin, ns, "stuck-pod", labels={TASK_UID_LABEL: "a-deleted-task"})
    hold = {"metadata": {"finalizers": ["taskflow.test/hold"]}}
    await admin.request("PATCH", path, body=enc.encode(hold), content_type=MERGE)
    await admin.request("DELETE", path)  # Terminating until the finalizer goes
    try:
        async with operator(kubeconfig, ns) as op:
            task = await create_task(admin, ns, "stuck", steps("s"), timeout="20s")
            uid = task["metadata"]["uid"]
            t0 = time.monotonic()
            st = await status_is(admin, ns, "stuck", status="Pending")
            cond = condition(st)
            assert cond["reason"] == "WaitingForOldPod", st
            assert 'waiting for the old pod "stuck-pod"' in cond["message"]
            assert "remove its finalizers or force-delete it" in cond["message"]
            await anyio.sleep(max(0.0, 12 - (time.monotonic() - t0)))
            # 12 s of waiting: tries at about 0, 1, 2, 4, 8 s (and one more right after
            # the status write), not 12 or more
            tries = api_calls(op, "create", "pods")
            assert 3 <= tries <= 7, tries
            st = await status_is(admin, ns, "stuck", status="Failure")
            cond = condition(st)
            assert cond["reason"] == "WaitingForOldPod", st
            assert "gave up at the Task's timeout (20s, spec.timeout)" in cond["message"]
            assert await pods_of(admin, ns, uid) == []
            assert await reasons_of(admin, ns, uid) == ["Failed", "WaitingForOldPod"]
            assert (
                api_calls(op, "create", "pods") <= tries + 3
            )  # 8 s more: at most a pause of 8 s, then 4 s
    finally:
        release = {"metadata": {"finalizers": None}}
        await admin.request("PATCH", path, body=enc.encode(release), content_type=MERGE)


async def test_a_pod_that_ended_without_container_statuses_ends_the_attempt(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    # A terminal phase without container statuses must end the attempt, not leave the Task
    # Pending for good.
    # The pod statuses are those a kubelet leaves after an admission rejection or a lost
    # node: a terminal phase and no container statuses.
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "ghost", steps("a", "b"), retries=1)
        uid = task["metadata"]["uid"]
        first = await the_pod(admin, ns, uid)
        await status_is(admin, ns, "ghost", podName="ghost-pod")
        await write_pod_status(admin, first, {"phase": "Succeeded", "startTime": ts(0)})
        st = await status_is(admin, ns, "ghost", podName="ghost-pod-2", attempt=2)
        [attempt] = st["attempts"]
        assert attempt["reason"] == "PodFailed", attempt
        assert "reported no result for step a (1/2)" in attempt["message"]

        async def second() -> Obj | None:
            pods = [
                p for p in await pods_of(admin, ns, uid) if p["metadata"]["name"] != "ghost-pod"
            ]
            return pods[0] if pods else None

        pod2: Obj = await eventually(second)
        await bind(admin, pod2)
        rejected = {
            "phase": "Failed",
            "reason": "OutOfcpu",
            "message": "Pod Node didn't have enough resource: cpu, requested: 100, used: 0",
        }
        await write_pod_status(admin, pod2, rejected)
        st = await status_is(admin, ns, "ghost", status="Failure")
        cond = condition(st)
        assert cond["reason"] == "PodFailed", st
        assert "OutOfcpu: Pod Node didn't have enough resource" in cond["message"]
        assert [p["metadata"]["name"] for p in await pods_of(admin, ns, uid)] == [
            "ghost-pod",
            "ghost-pod-2",
        ]
        assert (await task_status(admin, ns, "ghost"))["attempt"] == 2
