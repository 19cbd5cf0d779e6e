"""Scale (control-plane behaviour: pods pinned to no node): the operator's resident set with
N Tasks and their pods in its cache, at N/10, N/2 and N (1k, 5k, 10k in full size), then
with all of them finished (the bench writes each pod's status as a kubelet would, the
operator marks the Task Successful). Also how long the API server took to take them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime

from taskflow.engine.kube import Kube

from . import kubeops
from .operator_proc import Operator, operator
from .report import Metric

GOAL_MB = 120.0


async def run(kube: Kube, kubeconfig: str, n: int, within: float) -> list[Metric]:
    sizes = [n // 10, n // 2, n]
    rss: list[float] = []
    async with kubeops.namespace(kube, "tf-bench-scale") as ns:
        with operator(kubeconfig, ns) as op:
            await op.wait_ready()
            idle = await settled_rss(op)
            create_s = 0.0  # creating and waiting only, not the RSS readings between
            made = 0
            for size in sizes:
                docs = [kubeops.one_step_task(f"t-{i:05d}", pinned=True) for i in range(made, size)]
                start = time.monotonic()
                await kubeops.create_all(kube, kubeops.TASKS.format(ns=ns), docs)
                made = size
                await _wait_states(kube, ns, size, {"Pending"}, within, op)
                create_s += time.monotonic() - start
                rss.append(await settled_rss(op))
            start = time.monotonic()
            at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            patches = [
                (
                    f"{kubeops.PODS.format(ns=ns)}/t-{i:05d}-pod/status",
                    kubeops.finished_status("step", at),
                )
                for i in range(n)
            ]
            await kubeops.send_all(kube, "PATCH", patches, "application/merge-patch+json")
            await _wait_states(kube, ns, n, {"Successful"}, within, op)
            finish_s = time.monotonic() - start
            finished = await settled_rss(op)
    k = [f"{s / 1000:g}k" if s >= 1000 else str(s) for s in sizes]
    miss = f"; {rss[2] / GOAL_MB:.2f}x the goal" if rss[2] > GOAL_MB else ""
    return [
        Metric("scale.tasks", "Tasks (and pods) in the scale run", n, "Tasks"),
        Metric("rss.python_mb", "python alone", import_rss_mb(""), "MB"),
        Metric(
            "rss.imports_mb",
            "python + the operator's imports (kubernetes-asyncio's loader only)",
            import_rss_mb(OPERATOR_IMPORTS),
            "MB",
            "what bounds the operator's floor",
        ),
        Metric(
            "rss.k8s_client_import_mb",
            "python + import kubernetes_asyncio.client (all of it: not done since)",
            import_rss_mb("import kubernetes_asyncio.client"),
            "MB",
        ),
        Metric("rss.idle_mb", "operator RSS, ready, no Tasks", idle, "MB"),
        Metric(
            "rss.tasks_1k_mb", f"operator RSS, {k[0]} Tasks + pods cached (Pending)", rss[0], "MB"
        ),
        Metric("rss.tasks_5k_mb", f"same, {k[1]} Tasks", rss[1], "MB"),
        Metric(
            "rss.tasks_10k_mb",
            f"same, {k[2]} Tasks",
            rss[2],
            "MB",
            f"< {GOAL_MB:g} MB at 10k{miss}",
        ),
        Metric("rss.tasks_10k_finished_mb", f"same, all {k[2]} Successful", finished, "MB"),
        Metric(
            "scale.create_s",
            f"create {k[2]} Tasks, operator creates their pods + status",
            create_s,
            "s",
            f"{n / create_s:.0f} Tasks/s",
        ),
        Metric(
            "scale.finish_s",
            f"{k[2]} pod status writes -> all Tasks Successful",
            finish_s,
            "s",
            f"{n / finish_s:.0f} Tasks/s",
        ),
    ]


# What `taskflow run` imports before its first Task (taskflow/cli.py's cmd_run and _serve).
OPERATOR_IMPORTS = (
    "from taskflow.engine import client_config; client_config.lean(); import taskflow.cli, "
    "taskflow.engine.operator, taskflow.engine.kube, taskflow.logs, prometheus_client, uvloop"
)


def import_rss_mb(code: str) -> float:
    """RSS of a fresh interpreter after running ``code`` (imports; "" = none): what the
    operator's process holds before any Task. VmRSS, not ru_maxrss: Linux keeps ru_maxrss
    across exec (the parent's)."""
    code = f"import pathlib\n{code}\nprint(pathlib.Path('/proc/self/status').read_text())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    kb = next(int(x.split()[1]) for x in out.stdout.splitlines() if x.startswith("VmRSS:"))
    return kb * 1024 / 1e6


async def _wait_states(
    kube: Kube, ns: str, n: int, states: set[str], within: float, op: Operator
) -> None:
    async def reached() -> bool:
        if op.proc.poll() is not None:
            raise RuntimeError(f"operator exited:\n{op.log_tail()}")
        got = await kubeops.task_states(kube, ns)
        return sum(s in states for s in got.values()) >= n

    # A LIST of 10k Tasks costs the API server more than the operator's own writes: poll
    # it more slowly the more there are.
    await kubeops.wait_until(
        reached, f"{n} Tasks {'/'.join(states)}", within=within, interval=max(1.0, n / 2500)
    )


async def settled_rss(op: Operator, within: float = 20) -> float:
    """The operator's RSS once it stops moving (within 1 % over 1 s): the cache is filled
    and the reconciles of the last events are done. Bounded: the last reading at within."""
    deadline = time.monotonic() + within
    last = op.rss_mb()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = op.rss_mb()
        if abs(now - last) <= 0.01 * last:
            return now
        last = now
    return last
