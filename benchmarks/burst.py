"""Burst on the full tier: N one-container pods created directly until all have finished
(the raw ceiling) against N one-step Tasks through the operator until all are Successful,
in the same run, one after the other, each from an idle node."""

from __future__ import annotations

import time

from taskflow.engine.kube import Kube

from . import kubeops
from .goals import BURST_RATIO
from .operator_proc import operator
from .report import Metric, ratio


async def run(kube: Kube, kubeconfig: str, n: int, within: float) -> list[Metric]:
    async with kubeops.namespace(kube, "tf-bench-burst") as ns:
        raw = await _raw(kube, ns, n, within)
        await kubeops.delete_pods(kube, ns, within=within)
        tasks = await _tasks(kube, kubeconfig, ns, n, within)
    r = ratio(tasks, raw)
    return [
        Metric(
            "burst.raw_pods_per_s",
            f"{n} one-container pods created directly, all finished",
            raw,
            "pods/s",
        ),
        Metric(
            "burst.tasks_per_s",
            f"{n} one-step Tasks through the operator, all Successful",
            tasks,
            "Tasks/s",
            f">= {BURST_RATIO}x raw; here {r:.2f}x" if r else "",
        ),
        Metric(
            "burst.ratio", "burst.tasks_per_s / burst.raw_pods_per_s", r, "x", f">= {BURST_RATIO}"
        ),
    ]


async def _raw(kube: Kube, ns: str, n: int, within: float) -> float:
    docs = [kubeops.raw_pod(f"raw-{i:05d}", pinned=False) for i in range(n)]
    start = time.monotonic()
    await kubeops.create_all(kube, kubeops.PODS.format(ns=ns), docs)

    async def finished() -> bool:
        phases = await kubeops.pod_phases(kube, ns)
        failed = [name for name, p in phases.items() if p == "Failed"]
        if failed:
            raise RuntimeError(f"raw pods failed: {failed[:5]}")
        return sum(p == "Succeeded" for p in phases.values()) >= n

    await kubeops.wait_until(finished, f"{n} raw pods Succeeded", within=within)
    return n / (time.monotonic() - start)


async def _tasks(kube: Kube, kubeconfig: str, ns: str, n: int, within: float) -> float:
    docs = [kubeops.one_step_task(f"task-{i:05d}", pinned=False) for i in range(n)]
    with operator(kubeconfig, ns) as op:
        await op.wait_ready()
        start = time.monotonic()
        await kubeops.create_all(kube, kubeops.TASKS.format(ns=ns), docs)

        async def successful() -> bool:
            states = await kubeops.task_states(kube, ns)
            failed = [name for name, s in states.items() if s == "Failure"]
            if failed:
                raise RuntimeError(f"Tasks failed: {failed[:5]}\n{op.log_tail()}")
            return sum(s == "Successful" for s in states.values()) >= n

        await kubeops.wait_until(successful, f"{n} Tasks Successful", within=within)
        return n / (time.monotonic() - start)
