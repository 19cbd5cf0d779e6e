"""The create path at the API server's limit: N objects of each kind created 16 at
a time over one keep-alive HTTPS client, every pod pinned to a node label no node has, so only
object create -> pod ADDED (on a watch) is timed. Raw pods (the ceiling), Jobs (the cluster's
kube-controller-manager with its own defaults), Tasks through the operator at its defaults,
and Tasks with ``--qps 0``; each in a fresh namespace, the previous one gone first.
``python -m benchmarks.tools.create`` runs its rows for other operator arguments."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskflow.engine.kube import Kube

from . import kubeops
from .goals import CREATE_RATIO
from .operator_proc import DEFAULT_ARGS, OPERATOR_ARGS, operator
from .report import Metric, percentile, ratio

JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
JOB_LABEL = "batch.kubernetes.io/job-name"
GONE_WITHIN = 120.0  # a namespace of 500 unscheduled pods is deleted in seconds


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float
    per_s: float  # objects / (last pod ADDED - first create sent)
    span_s: float  # first create sent -> last pod ADDED


def owner_key(pod: Any) -> str:
    """The object a pod stands for: its Job, else its name less the operator's ``-pod``."""
    job: str | None = pod.metadata.labels.get(JOB_LABEL)
    return job if job else str(pod.metadata.name).removesuffix("-pod")


def name(i: int) -> str:
    return f"t-{i:05d}"


def job(i: int) -> dict[str, Any]:
    """A Job whose one pod is the raw client's pod (pinned nowhere)."""
    pod = kubeops.raw_pod(name(i), pinned=True)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name(i)},
        "spec": {"backoffLimit": 0, "template": {"spec": pod["spec"]}},
    }


async def measure(
    kube: Kube, ns: str, path: str, docs: Sequence[dict[str, Any]], within: float
) -> Timing:
    """Create ``docs`` (named t-00000...) at ``path`` once a pod watch of ``ns`` is open;
    time each create's send -> its pod's ADDED."""
    n = len(docs)
    seen: dict[str, float] = {}
    listening = asyncio.Event()
    watch = asyncio.create_task(
        kubeops.pods_added(kube, ns, seen, listening, within=within, key=owner_key)
    )
    try:
        await asyncio.wait_for(listening.wait(), timeout=30)
        sent = await kubeops.create_all(kube, path, docs)

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
    latencies = [(seen[name(i)] - sent[i][0]) * 1000 for i in range(n)]
    span = max(seen.values()) - min(s for s, _ in sent)
    return Timing(percentile(latencies, 50), percentile(latencies, 99), n / span, span)


async def raw(kube: Kube, n: int, within: float) -> Timing:
    docs = [kubeops.raw_pod(name(i), pinned=True) for i in range(n)]
    async with kubeops.namespace(kube, "tf-bench-create", wait_gone=GONE_WITHIN) as ns:
        return await measure(kube, ns, kubeops.PODS.format(ns=ns), docs, within)


async def jobs(kube: Kube, n: int, within: float) -> Timing:
    docs = [job(i) for i in range(n)]
    async with kubeops.namespace(kube, "tf-bench-create", wait_gone=GONE_WITHIN) as ns:
        return await measure(kube, ns, JOBS.format(ns=ns), docs, within)


async def tasks(
    kube: Kube, kubeconfig: str, n: int, within: float, base: Sequence[str], extra: Sequence[str]
) -> Timing:
    docs = [kubeops.one_step_task(name(i), pinned=True) for i in range(n)]
    async with kubeops.namespace(kube, "tf-bench-create", wait_gone=GONE_WITHIN) as ns:
        with operator(kubeconfig, ns, extra, base=base) as op:
            await op.wait_ready()
            return await measure(kube, ns, kubeops.TASKS.format(ns=ns), docs, within)


def p99_bound_ms(raw_timing: Timing) -> float:
    """The p99 goal: 2x the raw client's time for all N, plus 2 s."""
    return 2 * raw_timing.span_s * 1000 + 2000


async def run(kube: Kube, kubeconfig: str, n: int, within: float) -> list[Metric]:
    r = await raw(kube, n, within)
    j = await jobs(kube, n, within)
    t = await tasks(kube, kubeconfig, n, within, DEFAULT_ARGS, ())
    u = await tasks(kube, kubeconfig, n, within, OPERATOR_ARGS, ())
    return metrics(n, r, j, t, u)


def metrics(n: int, r: Timing, j: Timing, t: Timing, u: Timing) -> list[Metric]:
    x = ratio(t.per_s, r.per_s)
    bound = p99_bound_ms(r)
    return [
        Metric("create.raw_pod_p50_ms", f"{n} raw pods: create -> pod ADDED, p50", r.p50_ms, "ms"),
        Metric("create.raw_pod_p99_ms", "same, p99", r.p99_ms, "ms"),
        Metric("create.raw_pods_per_s", f"{n} raw pods, all ADDED", r.per_s, "pods/s"),
        Metric("create.jobs_p50_ms", f"{n} Jobs: Job create -> pod ADDED, p50", j.p50_ms, "ms"),
        Metric("create.jobs_p99_ms", "same, p99", j.p99_ms, "ms"),
        Metric(
            "create.jobs_per_s",
            f"{n} Jobs (the cluster's kube-controller-manager, its defaults)",
            j.per_s,
            "Jobs/s",
            _x(ratio(j.per_s, r.per_s)),
        ),
        Metric(
            "create.tasks_p50_ms",
            f"{n} Tasks, operator defaults: Task create -> pod ADDED, p50",
            t.p50_ms,
            "ms",
        ),
        Metric(
            "create.tasks_p99_ms",
            "same, p99",
            t.p99_ms,
            "ms",
            f"<= {bound:.0f} ms (2x the raw client's {r.span_s:.1f} s for all {n}, + 2 s)",
        ),
        Metric(
            "create.tasks_per_s",
            f"{n} Tasks, operator defaults, all pods ADDED",
            t.per_s,
            "Tasks/s",
            f">= {CREATE_RATIO}x raw; here {x:.2f}x" if x else f">= {CREATE_RATIO}x raw",
        ),
        Metric(
            "create.ratio",
            "create.tasks_per_s / create.raw_pods_per_s",
            x,
            "x",
            f">= {CREATE_RATIO}",
        ),
        Metric("create.qps0_tasks_p50_ms", f"{n} Tasks, `--qps 0`: p50", u.p50_ms, "ms"),
        Metric("create.qps0_tasks_p99_ms", "same, p99", u.p99_ms, "ms"),
        Metric(
            "create.qps0_tasks_per_s",
            f"{n} Tasks, `--qps 0`, all pods ADDED",
            u.per_s,
            "Tasks/s",
            _x(ratio(u.per_s, r.per_s)),
        ),
    ]


def _x(value: float | None) -> str:
    return f"{value:.3f}x raw" if value is not None else ""
