"""taskflow reconcile benchmark.

    python -m benchmarks.tools.reconcile                 # pure parts only
    python -m benchmarks.tools.reconcile --kubeconfig K  # + end-to-end against a cluster
    KUBECONFIG=K python -m benchmarks.tools.reconcile --tasks 300 --workers 8

Pure (no cluster):
  * ``plan()`` throughput for a Task of 1, 10 and 50 steps whose pod is mid-run;
  * decoding a watch event of a Pod: msgspec straight into the read model (what the engine
    does) vs. the naive path, ``json.loads`` + kubernetes-asyncio's model deserialisation
    (``ApiClient.deserialize(..., "V1Pod")``); and a Task: typed msgspec decode vs.
    ``json.loads`` + ``api.decode_task`` (``msgspec.convert``).

End-to-end (a cluster is given): N Tasks are created while no operator runs; then an engine
starts and we time until every Task has its pod and a status naming it (Pending). The same
is done with 1 worker (baseline) and with --workers workers, each in a fresh namespace; the
ratio is printed. Pods are pinned to a node label nothing has, so no kubelet runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import msgspec

from taskflow import api, reconcile
from taskflow.api.pod import Pod
from taskflow.engine.cache import decode_pod, decode_task
from taskflow.render import render_pod
from taskflow.settings import Settings

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_NODE = {"taskflow.bench/kubelet": "none"}


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_doc(n_steps: int, name: str = "bench", uid: str | None = None) -> dict[str, Any]:
    steps = [
        {
            "name": f"step-{i:02d}",
            "image": "busybox:1.36",
            "command": ["sh", "-c"],
            "args": [f"echo step {i}; sleep 1"],
            "env": [{"name": "STEP", "value": str(i)}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
        for i in range(n_steps)
    ]
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "uid": uid or str(uuid.uuid4()),
            "resourceVersion": "1000",
            "generation": 1,
            "creationTimestamp": ts(-5),
        },
        "spec": {"steps": steps, "podTemplate": {"nodeSelector": NO_NODE}},
    }


def _cstatus(name: str, i: int, current: int) -> dict[str, Any]:
    base = {
        "name": name,
        "image": "docker.io/library/busybox:1.36",
        "imageID": "docker.io/library/busybox@sha256:" + "0" * 64,
        "restartCount": 0,
        "ready": i == current,
        "started": i == current,
    }
    if i < current:
        base["state"] = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": ts(2 * i),
                "finishedAt": ts(2 * i + 1),
                "containerID": f"containerd://{i:064d}",
            }
        }
        base["containerID"] = f"containerd://{i:064d}"
    elif i == current:
        base["state"] = {"running": {"startedAt": ts(2 * i)}}
    else:
        base["state"] = {"waiting": {"reason": "PodInitializing"}}
    return base


def pod_doc(task: dict[str, Any]) -> dict[str, Any]:
    """What the API server sends for the Task's pod, mid-run (defaults filled in)."""
    pod = render_pod(api.decode_task(task))
    spec = pod["spec"]
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
    spec.update(
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        serviceAccountName="default",
        terminationGracePeriodSeconds=30,
        nodeName="node-1",
        priority=0,
        tolerations=[
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
    )
    meta = pod["metadata"]
    meta.update(
        uid=str(uuid.uuid4()),
        resourceVersion="1234",
        creationTimestamp=ts(-1),
        managedFields=[
            {
                "manager": "taskflow",
                "operation": "Update",
                "apiVersion": "v1",
                "time": ts(-1),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}, "f:spec": {}},
            }
        ],
    )
    names = [s["name"] for s in task["spec"]["steps"]]
    current = len(names) // 2
    statuses = [_cstatus(n, i, current) for i, n in enumerate(names)]
    pod["status"] = {
        "phase": "Pending" if current < len(names) - 1 else "Running",
        "startTime": ts(0),
        "hostIP": "10.0.0.1",
        "podIP": "10.1.0.5",
        "qosClass": "Burstable",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": ts(0)}
            for t in ("PodScheduled", "Initialized", "Ready", "ContainersReady")
        ],
        "initContainerStatuses": statuses[:-1],
        "containerStatuses": statuses[-1:],
    }
    return pod


def rate(fn: Callable[[], object], min_seconds: float = 0.4) -> float:
    """Calls per second of ``fn`` (repeated for at least ``min_seconds``)."""
    n = 0
    batch = 1
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed
        batch *= 2


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


async def pure() -> None:
    from kubernetes_asyncio.client import ApiClient

    settings = Settings()
    now = T0 + timedelta(seconds=1000)
    rows = []
    decode_rows = []
    async with ApiClient() as k8s:
        for n in (1, 10, 50):
            tdoc = task_doc(n)
            pdoc = pod_doc(tdoc)
            task = api.decode_task(tdoc)
            pod = api.decode_pod(pdoc)
            first = reconcile.plan(task, pod, now=now, settings=settings)
            # steady state: the status is already what plan computes -> an empty Plan
            assert first.status is not None
            settled = msgspec.structs.replace(task, status=first.status)
            plans_changed = rate(partial(reconcile.plan, task, pod, now=now, settings=settings))
            plans_steady = rate(partial(reconcile.plan, settled, pod, now=now, settings=settings))
            rows.append(
                [
                    f"{n} steps",
                    f"{plans_changed:,.0f}",
                    f"{plans_steady:,.0f}",
                    f"{len(json.dumps(pdoc)):,}",
                ]
            )

            event = json.dumps({"type": "MODIFIED", "object": pdoc}).encode()
            wire = msgspec.json.Decoder(_Event)

            def fast(event: bytes = event, wire: msgspec.json.Decoder[_Event] = wire) -> Pod:
                return decode_pod(wire.decode(event).object)

            class _Resp:
                def __init__(self, data: str) -> None:
                    self.data = data

            def naive(event: bytes = event) -> object:
                obj = json.loads(event)["object"]
                return k8s.deserialize(_Resp(json.dumps(obj)), "V1Pod")

            fast_rate, naive_rate = rate(fast), rate(naive)
            tevent = json.dumps({"type": "MODIFIED", "object": tdoc}).encode()

            def task_fast(
                tevent: bytes = tevent, wire: msgspec.json.Decoder[_Event] = wire
            ) -> object:
                return decode_task(wire.decode(tevent).object)

            def task_naive(tevent: bytes = tevent) -> object:
                return api.decode_task(json.loads(tevent)["object"])

            tf, tn = rate(task_fast), rate(task_naive)
            decode_rows.append(
                [
                    f"{n} steps",
                    f"{fast_rate:,.0f}",
                    f"{naive_rate:,.0f}",
                    f"{fast_rate / naive_rate:.1f}x",
                    f"{tf:,.0f}",
                    f"{tn:,.0f}",
                    f"{tf / tn:.1f}x",
                ]
            )
    table(
        "plan() throughput (pod mid-run)",
        ["task", "plans/s (status changes)", "plans/s (steady, empty plan)", "pod JSON bytes"],
        rows,
    )
    table(
        "watch event decoding (events/s)",
        [
            "task",
            "Pod msgspec",
            "Pod json+k8s models (baseline)",
            "ratio",
            "Task msgspec",
            "Task json+convert (baseline)",
            "ratio",
        ],
        decode_rows,
    )


class _Event(msgspec.Struct):
    type: str
    object: msgspec.Raw


# -- end to end -----------------------------------------------------------------------------


async def e2e(kubeconfig: str, n_tasks: int, workers: int, steps: int) -> None:
    from taskflow.engine.kube import connect

    admin = await connect(kubeconfig=kubeconfig)
    try:
        await _install_crd(admin)
        results = []
        for w in (1, workers):
            results.append(await _one_run(admin, kubeconfig, n_tasks, w, steps))
    finally:
        await admin.close()
    rows = [
        [
            f"{w} worker{'s' if w > 1 else ''}",
            str(n),
            f"{secs:.2f}",
            f"{n / secs:,.1f}",
            f"{rec / secs:,.1f}",
            f"{calls / secs:,.1f}",
        ]
        for (w, n, secs, rec, calls) in results
    ]
    table(
        f"end to end: {n_tasks} Tasks of {steps} steps -> pod created + status Pending",
        ["engine", "tasks", "seconds", "tasks/s", "reconciles/s", "API writes/s"],
        rows,
    )
    base, best = results[0], results[1]
    print(f"\n{workers} workers vs 1 worker: {base[2] / best[2]:.2f}x faster")


async def _install_crd(admin: Any) -> None:
    from taskflow.api.crd import build_crd
    from taskflow.engine.kube import ApiError

    crd = build_crd()
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    try:
        await admin.request("POST", path, body=msgspec.json.encode(crd))
    except ApiError as exc:
        if exc.status != 409:
            raise
    for _ in range(100):
        try:
            await admin.request("GET", "/apis/api.practice.com/v1alpha1/tasks", query={"limit": 1})
            return
        except ApiError:
            await asyncio.sleep(0.2)
    raise RuntimeError("the Task CRD did not become available")


async def _one_run(
    admin: Any, kubeconfig: str, n: int, workers: int, steps: int
) -> tuple[int, int, float, float, float]:
    import anyio

    from taskflow.engine.kube import connect
    from taskflow.engine.operator import Operator, OperatorConfig

    ns = f"tf-bench-{uuid.uuid4().hex[:6]}"
    ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    await admin.request("POST", "/api/v1/namespaces", body=msgspec.json.encode(ns_body))
    try:
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            doc = task_doc(steps, name=f"t{i:04d}")
            del doc["metadata"]["uid"], doc["metadata"]["resourceVersion"]
            del doc["metadata"]["creationTimestamp"], doc["metadata"]["generation"]
            doc["metadata"]["namespace"] = ns
            async with sem:
                await admin.request(
                    "POST",
                    f"/apis/api.practice.com/v1alpha1/namespaces/{ns}/tasks",
                    body=msgspec.json.encode(doc),
                )

        await asyncio.gather(*(create(i) for i in range(n)))
        kube = await connect(kubeconfig=kubeconfig)
        cfg = OperatorConfig(
            namespaces=(ns,), workers=workers, qps=0.0, bind_address="0", page_size=500
        )
        op = Operator(kube, cfg)
        try:
            async with anyio.create_task_group() as tg:
                t0 = time.perf_counter()
                await tg.start(op.run)
                while not _all_pending(op, n):  # noqa: ASYNC110 - polling the cache
                    await asyncio.sleep(0.01)
                elapsed = time.perf_counter() - t0
                tg.cancel_scope.cancel()
        finally:
            await kube.close()
        reconciles = sum(
            op.metrics.reconcile_count(r) for r in ("success", "requeue", "requeue_after")
        )
        calls = 0.0
        for metric in op.metrics.registry.collect():
            for s in metric.samples:
                if s.name == "taskflow_api_requests_total":
                    calls += s.value
        return workers, n, elapsed, reconciles, calls
    finally:
        await admin.request("DELETE", f"/api/v1/namespaces/{ns}")


def _all_pending(op: Any, n: int) -> bool:
    from taskflow.engine.cache import Undecodable

    done = 0
    for entry in op.cache.tasks.values():
        if isinstance(entry, Undecodable) or entry.status is None:
            continue
        if entry.status.pod_name and entry.status.status in ("Pending", "Running"):
            done += 1
    return done >= n


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.reconcile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="run the end-to-end part against this cluster (default: $KUBECONFIG)",
    )
    parser.add_argument(
        "--tasks", type=int, default=200, help="Tasks per end-to-end run (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="workers of the compared engine (default: %(default)s)",
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="steps per Task end to end (default: %(default)s)"
    )
    parser.add_argument("--no-pure", action="store_true", help="skip the pure part")
    args = parser.parse_args()
    if not args.no_pure:
        asyncio.run(pure())
    if args.kubeconfig:
        import uvloop

        uvloop.install()
        asyncio.run(e2e(args.kubeconfig, args.tasks, args.workers, args.steps))
    else:
        print("\n(no --kubeconfig / KUBECONFIG: end-to-end part skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
