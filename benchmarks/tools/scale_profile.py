"""What the operator's memory per Task is made of: the engine in this process under
tracemalloc, N pinned one-step Tasks (pods never run) in a fresh namespace, the heap once
every Task has its pod and a Pending status, grouped by source line.

    KUBECONFIG=... python -m benchmarks.tools.scale_profile --tasks 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc

import anyio

from benchmarks import kubeops
from benchmarks.operator_proc import rss_mb
from taskflow.engine.kube import connect
from taskflow.engine.operator import Operator, OperatorConfig


async def profile(kubeconfig: str, n: int, top: int) -> None:
    admin = await connect(kubeconfig=kubeconfig)
    try:
        await kubeops.ensure_crd(admin)
        async with kubeops.namespace(admin, "tf-bench-profile") as ns:
            tracemalloc.start(1)
            kube = await connect(kubeconfig=kubeconfig)
            op = Operator(kube, OperatorConfig(namespaces=(ns,), qps=0.0, bind_address="0"))
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(op.run)
                    gc.collect()
                    base, rss0 = tracemalloc.take_snapshot(), rss_mb(os.getpid())
                    docs = [kubeops.one_step_task(f"t-{i:05d}", pinned=True) for i in range(n)]
                    await kubeops.create_all(admin, kubeops.TASKS.format(ns=ns), docs)

                    async def cached() -> bool:
                        pending = sum(
                            getattr(getattr(e, "status", None), "status", "") == "Pending"
                            for e in op.cache.tasks.values()
                        )
                        return pending >= n and len(op.cache.pods) >= n

                    await kubeops.wait_until(cached, f"{n} Tasks cached", within=540)
                    await asyncio.sleep(2)  # the last status writes' watch events
                    gc.collect()
                    snap, rss1 = tracemalloc.take_snapshot(), rss_mb(os.getpid())
                    tg.cancel_scope.cancel()
            finally:
                await kube.close()
    finally:
        await admin.close()
    stats = snap.compare_to(base, "lineno")
    grown = sum(s.size_diff for s in stats)
    print(
        f"{n} Tasks + pods: heap +{grown / 1e6:.1f} MB ({grown / n:.0f} B/Task), "
        f"RSS +{rss1 - rss0:.1f} MB (this process, tracemalloc's own overhead included)"
    )
    for s in stats[:top]:
        frame = s.traceback[0]
        print(
            f"  {s.size_diff / n:8.0f} B/Task  {s.count_diff / n:6.1f} obj/Task  "
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.scale_profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    opts = parser.parse_args()
    if not opts.kubeconfig:
        parser.error("--kubeconfig or $KUBECONFIG is required")
    asyncio.run(profile(opts.kubeconfig, opts.tasks, opts.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
