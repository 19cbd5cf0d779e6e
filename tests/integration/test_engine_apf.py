"""The client-side limit against a real kube-apiserver: it does API Priority and Fairness, so
the operator at its defaults paces nothing; an explicit ``--qps 5`` still binds."""

from __future__ import annotations

import logging
import time

import anyio
import pytest

from taskflow.engine.kube import Kube, connect
from taskflow.engine.operator import Operator
from tests.integration.kube_sim import create_task, eventually, operator, pods_of, steps

pytestmark = pytest.mark.integration

TASKS = 20  # each costs the operator a pod, an Event and a status write


def paced(op: Operator) -> tuple[float, float]:
    """(requests that took a token, seconds they waited for it in all), from its metrics."""
    count = waited = 0.0
    for metric in op.metrics.registry.collect():
        for s in metric.samples:
            if s.name == "rest_client_rate_limiter_duration_seconds_count":
                count += s.value
            elif s.name == "rest_client_rate_limiter_duration_seconds_sum":
                waited += s.value
    return count, waited


async def all_have_pods(admin: Kube, ns: str, uids: list[str]) -> bool | None:
    for uid in uids:
        if not await pods_of(admin, ns, uid):
            return None
    return True


async def test_the_api_server_does_apf_and_says_its_version(kubeconfig: str) -> None:
    kube = await connect(kubeconfig=kubeconfig)
    try:
        facts = await kube.probe_server()
        assert facts.apf is True
        assert facts.version is not None
        assert facts.version >= (1, 34)  # the harness builds 1.34
    finally:
        await kube.close()


async def test_at_its_defaults_the_operator_runs_without_a_client_limit(
    kubeconfig: str, admin: Kube, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskflow.operator")
    async with operator(kubeconfig, ns, qps=None, burst=None) as op:
        assert op.client_limit.qps == 0
        assert op.kube.limiter.rate == 0
        assert any("no client-side limit" in r.getMessage() for r in caplog.records)
        uids = [
            (await create_task(admin, ns, f"t{i}", steps("a")))["metadata"]["uid"]
            for i in range(TASKS)
        ]
        await eventually(lambda: all_have_pods(admin, ns, uids))
        count, waited = paced(op)
        assert count >= 3 * TASKS  # every write went through the (open) bucket
        assert waited == 0


async def test_with_qps_5_the_operator_sends_at_most_5_a_second(
    kubeconfig: str, admin: Kube, ns: str
) -> None:
    qps, burst = 5.0, 5
    started = time.monotonic()
    async with operator(kubeconfig, ns, qps=qps, burst=burst, workers=4) as op:
        assert op.client_limit.qps == qps
        for i in range(TASKS):
            await create_task(admin, ns, f"t{i}", steps("a"))
        await anyio.sleep(3.0)  # unlimited, all 3 x TASKS writes would be done by now
        count, waited = paced(op)
        elapsed = time.monotonic() - started
    # A full bucket at start, qps tokens a second since; each worker may hold one reservation
    # it is still waiting on (counted when taken).
    assert count <= burst + qps * elapsed + op.config.workers, (count, elapsed)
    assert count > burst  # past the burst: the pacing itself was exercised
    assert waited > 0  # requests did queue for tokens
