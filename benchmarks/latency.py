"""Control-plane tier: create -> pod created. N pods pinned to no node (no kubelet involved)
created by a raw client, against N Tasks whose pods the operator creates; per object the
time from the client sending its create to the pod's ADDED event on a watch, and the rate."""

from __future__ import annotations

import asyncio
import contextlib

from taskflow.engine.kube import Kube

from . import kubeops
from .operator_proc import operator
from .report import Metric, percentile, ratio

WIDE = 16  # workers of the second operator run: what the default 4 workers leave on the table


async def run(kube: Kube, kubeconfig: str, n: int, within: float) -> list[Metric]:
    async with kubeops.namespace(kube, "tf-bench-latency") as ns:
        raw = await _measure(kube, ns, n, within, "raw")
    async with kubeops.namespace(kube, "tf-bench-latency") as ns:
        with operator(kubeconfig, ns) as op:
            await op.wait_ready()
            tasks = await _measure(kube, ns, n, within, "task")
    async with kubeops.namespace(kube, "tf-bench-latency") as ns:
        with operator(kubeconfig, ns, [f"--workers={WIDE}"]) as op:
            await op.wait_ready()
            wide = await _measure(kube, ns, n, within, "task")
    r, rw = ratio(tasks[2], raw[2]), ratio(wide[2], raw[2])
    return [
        Metric(
            "latency.raw_pod_p50_ms",
            f"{n} pods by a raw client: create -> pod ADDED, p50",
            raw[0],
            "ms",
        ),
        Metric("latency.raw_pod_p99_ms", "same, p99", raw[1], "ms"),
        Metric(
            "latency.raw_pods_per_s", f"{n} pods by a raw client, all created", raw[2], "pods/s"
        ),
        Metric(
            "latency.task_pod_p50_ms",
            f"{n} Tasks: Task create -> its pod ADDED, p50",
            tasks[0],
            "ms",
        ),
        Metric("latency.task_pod_p99_ms", "same, p99", tasks[1], "ms"),
        Metric(
            "latency.tasks_per_s",
            f"{n} Tasks, all pods created",
            tasks[2],
            "Tasks/s",
            f"{r:.2f}x the raw client" if r else "",
        ),
        Metric(
            "latency.wide_task_pod_p50_ms",
            f"same Tasks, operator --workers={WIDE}: p50",
            wide[0],
            "ms",
        ),
        Metric("latency.wide_task_pod_p99_ms", f"--workers={WIDE}: p99", wide[1], "ms"),
        Metric(
            "latency.wide_tasks_per_s",
            f"--workers={WIDE}: all pods created",
            wide[2],
            "Tasks/s",
            f"{rw:.2f}x the raw client" if rw else "",
        ),
    ]


async def _measure(
    kube: Kube, ns: str, n: int, within: float, kind: str
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, objects/s) of create -> pod ADDED."""
    seen: dict[str, float] = {}
    listening = asyncio.Event()
    watch = asyncio.create_task(kubeops.pods_added(kube, ns, seen, listening, within=within))
    try:
        # The first create goes out once the watch is open, so no ADDED time is a LIST's.
        await asyncio.wait_for(listening.wait(), timeout=30)
        if kind == "raw":
            docs = [kubeops.raw_pod(f"t-{i:05d}-pod", pinned=True) for i in range(n)]
            sent = await kubeops.create_all(kube, kubeops.PODS.format(ns=ns), docs)
        else:
            docs = [kubeops.one_step_task(f"t-{i:05d}", pinned=True) for i in range(n)]
            sent = await kubeops.create_all(kube, kubeops.TASKS.format(ns=ns), docs)

        async def all_seen() -> bool:
            if watch.done():
                watch.result()  # raise what stopped it
                raise RuntimeError("the pod watch ended early")
            return len(seen) >= n

        await kubeops.wait_until(all_seen, f"{n} pods ADDED", within=within, interval=0.1)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    latencies = [(seen[f"t-{i:05d}-pod"] - sent[i][0]) * 1000 for i in range(n)]
    span = max(seen.values()) - min(s for s, _ in sent)
    return percentile(latencies, 50), percentile(latencies, 99), n / span
