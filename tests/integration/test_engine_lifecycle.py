"""Cancel, timeout, retries and TTL through the engine against a real API server (the test
plays the kubelet; tests/e2e/test_e2e_lifecycle.py does the same on a real node)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from taskflow.api.task import INSTALL_CONTAINER
from taskflow.engine.kube import ApiError, Kube
from taskflow.settings import Settings
from tests.integration.kube_sim import (
    MERGE,
    T0,
    TASKS,
    Obj,
    bind,
    create_task,
    cstatus,
    dec,
    enc,
    events_of,
    eventually,
    get_task,
    kubelet,
    operator,
    pods_of,
    status_is,
    steps,
    the_pod,
    ts,
    write_pod_status,
)

pytestmark = pytest.mark.integration


async def cancel(admin: Kube, ns: str, name: str) -> None:
    await admin.request(
        "PATCH",
        f"{TASKS.format(ns=ns)}/{name}",
        body=enc.encode({"spec": {"cancel": True}}),
        content_type=MERGE,
    )


async def pod_named(admin: Kube, ns: str, name: str) -> Obj:
    """Wait for pod ``name`` and bind it to a simulated node."""

    async def get() -> Obj | None:
        try:
            return dec(await admin.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}"))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    pod: Obj = await eventually(get)
    await bind(admin, pod)
    return pod


def reasons(events: list[Obj]) -> list[str]:
    return sorted(e["reason"] for e in events if e["reason"] != "Unschedulable")


async def test_cancel_while_running_stops_the_pod_then_ends_cancelled(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "stop", steps("a", "b"), retries=2)
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        await kubelet(admin, pod, "Pending", {"a": ("running", 1)})
        await status_is(admin, ns, "stop", status="Running")
        await cancel(admin, ns, "stop")

        async def told() -> bool:
            p = dec(await admin.request("GET", f"/api/v1/namespaces/{ns}/pods/stop-pod"))
            return bool(p["spec"].get("activeDeadlineSeconds") == 1)

        await eventually(told)

        async def stopping() -> bool:
            # the pod is told before the status that follows from it is written
            st = await status_is(admin, ns, "stop", status="Running")
            return bool(st["conditions"][0]["reason"] == "Stopping")

        await eventually(stopping)
        # the kubelet stops the running step at the deadline; b never starts
        await kubelet(admin, pod, "Failed", {"a": ("terminated", 143, 1, 3)})
        st = await status_is(admin, ns, "stop", status="Cancelled")
        assert [s["state"] for s in st["steps"]] == ["Terminated", "NotRun"]
        cond = st["conditions"][0]
        assert (cond["status"], cond["reason"]) == ("False", "Cancelled")
        assert "step a (1/2) was running" in cond["message"]
        await anyio.sleep(0.5)  # a retry would have created its pod by now
        assert len(await pods_of(admin, ns, task["metadata"]["uid"])) == 1
        assert "Cancelled" in reasons(await events_of(admin, ns, task["metadata"]["uid"]))


async def test_a_task_cancelled_while_the_operator_was_down_never_gets_a_pod(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    task = await create_task(admin, ns, "never", steps("a"))
    await cancel(admin, ns, "never")
    async with operator(kubeconfig, ns):
        st = await status_is(admin, ns, "never", status="Cancelled")
        assert "no pod was created" in st["conditions"][0]["message"]
        assert await pods_of(admin, ns, task["metadata"]["uid"]) == []


async def test_timeout_while_unscheduled_fails_at_once_and_disarms_the_pod(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "slow", steps("a"), timeout="2s")
        st = await status_is(admin, ns, "slow", status="Failure")
        cond = st["conditions"][0]
        assert cond["reason"] == "TimedOut"
        assert "did not finish within 2s (spec.timeout)" in cond["message"]
        [pod] = await pods_of(admin, ns, task["metadata"]["uid"])
        assert pod["spec"]["activeDeadlineSeconds"] == 1


async def test_a_failed_attempt_is_retried_in_a_new_pod_and_can_succeed(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "flaky", steps("a"), retries=2)
        uid = task["metadata"]["uid"]
        first = await the_pod(admin, ns, uid)
        await kubelet(admin, first, "Failed", {"a": ("terminated", 1, 1, 2)})
        second = await pod_named(admin, ns, "flaky-pod-2")
        assert second["metadata"]["labels"]["api.practice.com/attempt"] == "2"
        st = await status_is(admin, ns, "flaky", attempt=2, status="Pending")
        assert st["attempts"][0]["reason"] == "StepFailed"
        assert st["attempts"][0]["podName"] == "flaky-pod"
        await kubelet(admin, second, "Succeeded", {"a": ("terminated", 0, 3, 4)})
        st = await status_is(admin, ns, "flaky", status="Successful")
        assert st["podName"] == "flaky-pod-2"
        assert len(await pods_of(admin, ns, uid)) == 2
        got = reasons(await events_of(admin, ns, uid))
    assert got == sorted(
        ["PodCreated"] * 2
        + ["StepStarted"] * 2
        + ["StepFailed", "Retrying", "StepSucceeded", "Succeeded"]
    )


async def test_a_failure_stops_the_pod_and_the_retry_waits_until_it_has_stopped(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "halt", steps("a", "b"), retries=1)
        uid = task["metadata"]["uid"]
        first = await the_pod(admin, ns, uid)
        # a failed; the kubelet has not ended the pod yet (b still waits)
        await kubelet(admin, first, "Pending", {"a": ("terminated", 3, 1, 2)})

        async def told() -> bool:
            p = dec(await admin.request("GET", f"/api/v1/namespaces/{ns}/pods/halt-pod"))
            return bool(p["spec"].get("activeDeadlineSeconds") == 1)

        await eventually(told)
        st = await status_is(admin, ns, "halt", status="Running", attempt=1)
        assert st["conditions"][0]["reason"] == "Stopping"
        assert "attempt 1 failed (StepFailed" in st["conditions"][0]["message"]
        await anyio.sleep(0.5)  # no second pod while the first may still run
        assert len(await pods_of(admin, ns, uid)) == 1
        # the kubelet stops it at the lowered deadline
        await kubelet(admin, first, "Failed", {"a": ("terminated", 3, 1, 2)})
        await pod_named(admin, ns, "halt-pod-2")
        st = await status_is(admin, ns, "halt", attempt=2, status="Pending")
        assert [(a["attempt"], a["reason"]) for a in st["attempts"]] == [(1, "StepFailed")]
        got = [e["reason"] for e in await events_of(admin, ns, uid)]
        assert got.count("Retrying") == 1


async def test_an_agent_killed_without_a_state_fails_the_task_and_stops_the_pod(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    # The failure must also stop the pod: else the later agents wait and the pod runs on
    async with operator(kubeconfig, ns, settings=Settings(default_executor="agent")):
        task = await create_task(admin, ns, "killed", steps("a", "b"))
        uid = task["metadata"]["uid"]
        pod = await the_pod(admin, ns, uid)
        install = cstatus(INSTALL_CONTAINER, ("terminated", 0, 0, 1))
        died = cstatus("a", ("terminated", 137, 1, 2))  # SIGKILL: no termination message
        status = {
            "phase": "Running",
            "startTime": ts(0),
            "initContainerStatuses": [install],
            "containerStatuses": [died, cstatus("b", ("running", 1))],
        }
        await write_pod_status(admin, pod, status)
        st = await status_is(admin, ns, "killed", status="Failure")
        cond = st["conditions"][0]
        assert cond["reason"] == "AgentDied"
        assert "its container ended (Error, exit code 137) without a state" in cond["message"]
        assert [s["state"] for s in st["steps"]] == ["Terminated", "NotRun"]
        [p] = await pods_of(admin, ns, uid)
        assert p["spec"]["activeDeadlineSeconds"] == 1


async def test_an_always_failing_task_runs_retries_plus_one_pods(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "bad", steps("a"), retries=2)
        uid = task["metadata"]["uid"]
        for name in ("bad-pod", "bad-pod-2", "bad-pod-3"):
            pod = await pod_named(admin, ns, name)
            await kubelet(admin, pod, "Failed", {"a": ("terminated", 2, 1, 2)})
        st = await status_is(admin, ns, "bad", status="Failure")
        assert st["attempt"] == 3
        assert [a["attempt"] for a in st["attempts"]] == [1, 2]
        await anyio.sleep(0.5)  # no fourth attempt
        assert sorted(p["metadata"]["name"] for p in await pods_of(admin, ns, uid)) == [
            "bad-pod",
            "bad-pod-2",
            "bad-pod-3",
        ]


async def _finish(admin: Kube, ns: str, name: str, **spec: Any) -> None:
    """Run Task ``name`` to success, its step ending now (the TTL counts from there)."""
    task = await create_task(admin, ns, name, steps("a"), **spec)
    pod = await the_pod(admin, ns, task["metadata"]["uid"])
    now = (datetime.now(UTC) - T0).total_seconds()
    await kubelet(admin, pod, "Succeeded", {"a": ("terminated", 0, now - 1, now)})
    await status_is(admin, ns, name, status="Successful")


async def _gone(admin: Kube, ns: str, name: str) -> bool:
    try:
        await get_task(admin, ns, name)
    except ApiError as exc:
        return exc.status == 404
    return False


async def test_ttl_deletes_finished_tasks_also_those_that_expired_while_down(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        await _finish(admin, ns, "keep")
        # long enough for _finish to see it finished before it is deleted
        await _finish(admin, ns, "short", ttlSecondsAfterFinished=3)
        await eventually(lambda: _gone(admin, ns, "short"), within=20)
        await _finish(admin, ns, "later", ttlSecondsAfterFinished=4)
    # the operator is down when "later" expires
    await anyio.sleep(4.5)
    assert not await _gone(admin, ns, "later")
    async with operator(kubeconfig, ns):
        await eventually(lambda: _gone(admin, ns, "later"), within=15)
        assert not await _gone(admin, ns, "keep")
