"""`nox -s bench`: taskflow against its floors and ceilings, side by side, on this machine.

    python -m benchmarks.run --quick                 # tiny sizes, a few minutes (CI: e2e tier)
    python -m benchmarks.run                         # full sizes, writes docs/benchmarks.md
    python -m benchmarks.run --only scale            # one part; merged into the saved results

Clusters: --kubeconfig / $KUBECONFIG if given (the harness's points at 127.0.0.1), else the
running harness cluster, else the harness starts one (and stops it afterwards): the full tier
when a part needs a node, else the control-plane tier. ``latency`` and ``scale`` run on
--control-plane-kubeconfig when given (a control-plane tier: no scheduler, no kubelet), else
on the same cluster. Every harness cluster answers on 127.0.0.1:6443, so one process reaches
only one of them: here the control-plane parts run with ``--only latency --only scale``
inside the network namespace of their own control-plane tier, and the page merges the parts.
Prints the table, then one ``BENCH key=value`` line per number, and writes the docs page.

Parts: ``handoff``, ``burst`` and ``create`` (full tier; create's pods pinned to no node:
raw pods, Jobs, Tasks at the operator's defaults and with --qps 0), ``latency`` and
``scale`` (pods pinned to no node, so the control-plane tier's behaviour on any cluster),
``agent`` (no cluster).
``handoff`` is the rows of :mod:`benchmarks.handoff_bench` (its hook: ``bench_rows(kubeconfig:
str, quick: bool) -> Mapping[str, float | None]``, BENCH key -> value).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import agent, burst, create, goals, kubeops, latency, operator_proc, scale
from .report import Metric, bench_lines, markdown, ratio, text_table

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("handoff", "burst", "create", "latency", "scale", "agent")
# handoff, burst need a kubelet; create is issue 20's full-tier measurement (pods pinned nowhere)
NODE_PARTS = {"handoff", "burst", "create"}
CONTROL_PLANE_PARTS = {"latency", "scale"}
# (quick, full) sizes; the minimums in full size.
SIZES = {"burst": (20, 200), "create": (20, 500), "latency": (50, 2000), "scale": (200, 10_000)}
METHOD = [
    "All clients (the bench's, the operator's) reach the API server through the kubeconfig "
    "given (the harness's: 127.0.0.1); each part runs in its own namespace, deleted after; "
    "creates go 16 at a time. The operator under test is `python -m taskflow run` out of "
    "cluster, watching only that namespace.",
    "burst: from the first create until a poll (every 0.5 s) sees all N pods Succeeded / all "
    "N Tasks Successful; on the node, from an idle node each time.",
    "create: N objects of each kind (raw pods, Jobs, Tasks at the operator's defaults, Tasks "
    "with `--qps 0`), each in a fresh namespace, 16 at a time; client send of each create -> "
    "its pod's ADDED on a watch; pods pinned to a node label no node has. Its defaults row "
    "runs `python -m taskflow run --log-level warning` (no --qps, default workers), not the "
    "operator line above.",
    "latency, scale: pods pinned to a node label no node has, so no kubelet touches them "
    "(the control-plane tier's behaviour; the notes say which cluster served them). "
    "latency: client send of each create -> the pod's ADDED event "
    "on a watch. scale: RSS from /proc once it is steady (1 % over 1 s), after every Task "
    "has its pod and a Pending status; finished: the bench writes each pod's status "
    "(Succeeded, exit 0) as a kubelet would.",
]
HANDOFF_MODULE = "benchmarks.handoff_bench"  # written separately; joins the table if present


def machine() -> dict[str, str]:
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores ({model}), {mem_kb / 1024**2:.1f} GiB memory",
        "commit": commit or "unknown",
        "python": platform.python_version(),
    }


def handoff(kubeconfig: str, quick: bool) -> list[Metric]:
    try:
        module = importlib.import_module(HANDOFF_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != HANDOFF_MODULE:
            raise
        return []
    if not hasattr(module, "bench_rows"):  # run on its own: python benchmarks/handoff_bench.py
        return []
    v: dict[str, float | None] = dict(module.bench_rows(kubeconfig, quick))
    runs, steps, chain = module.SIZES[quick]
    of = f"{steps} no-op steps, median of {runs}"
    agent_x = ratio(v.get("handoff20.agent_mode_s"), v.get("handoff20.parallel_floor_s"))
    kubelet_x = ratio(v.get("handoff20.kubelet_mode_s"), v.get("handoff20.init_floor_s"))
    rows = [
        ("handoff20.init_floor_s", f"{of}: raw pod, init containers", "s", ""),
        (
            "handoff20.parallel_floor_s",
            f"{of}: raw pod, regular containers chaining done files (10 ms poll)",
            "s",
            "",
        ),
        (
            "handoff20.kubelet_mode_s",
            f"{of}: Task, executor kubelet",
            "s",
            f"<= 1.1x init floor; here {kubelet_x:.2f}x" if kubelet_x else "<= 1.1x init floor",
        ),
        (
            "handoff20.agent_mode_s",
            f"{of}: Task, executor agent",
            "s",
            f"<= 1.3x parallel floor; here {agent_x:.2f}x" if agent_x else "<= 1.3x",
        ),
        (
            "handoff.agent_long_step_ms",
            f"agent: median gap between {chain} `sleep 1` steps (its timestamps)",
            "ms",
            "<= 10 ms",
        ),
    ]
    return [Metric(key, label, v.get(key), unit, goal) for key, label, unit, goal in rows]


async def cluster_parts(
    kubeconfig: str, parts: Sequence[str], sizes: dict[str, int], within: float
) -> tuple[dict[str, list[Metric]], list[str]]:
    from taskflow.engine.kube import connect

    results: dict[str, list[Metric]] = {}
    notes: list[str] = []
    kube = await connect(kubeconfig=kubeconfig)
    try:
        await kubeops.ensure_crd(kube)
        others = await kubeops.other_operators(kube)
        if others:
            notes.append(
                "another taskflow operator watching all namespaces ran during this run "
                f"({', '.join(others)}): it also reconciled the bench's Tasks"
            )
        ran = sorted(CONTROL_PLANE_PARTS & set(parts), key=PARTS.index)
        if ran:
            nodes = await kubeops.node_count(kube)
            where = (
                "a control-plane tier (no node, no scheduler, no kubelet)"
                if nodes == 0
                else f"a cluster with {nodes} node(s), no kubelet touching the pinned pods"
            )
            notes.append(f"{', '.join(ran)}: served by {where}")
        runners: dict[str, Callable[[int], Any]] = {
            "burst": lambda n: burst.run(kube, kubeconfig, n, within),
            "create": lambda n: create.run(kube, kubeconfig, n, within),
            "latency": lambda n: latency.run(kube, kubeconfig, n, within),
            "scale": lambda n: scale.run(kube, kubeconfig, n, within),
        }
        for part in parts:
            if part in runners:
                n = sizes[part]
                started = time.monotonic()
                results[part] = await runners[part](n)
                print(f"{part}: N={n}, {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        await kube.close()
    return results, notes


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI), a few minutes")
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        help="the cluster (full tier for handoff, burst); default: $KUBECONFIG",
    )
    parser.add_argument(
        "--control-plane-kubeconfig",
        help="cluster for latency and scale (default: --kubeconfig's), e.g. a control-plane "
        "tier in its own network namespace",
    )
    parser.add_argument("--only", action="append", choices=PARTS, help="run only these parts")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="page to write (default: docs/benchmarks.md in full size, none with --quick)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / ".bench" / "results.json",
        help="results of earlier --only runs, merged into the page (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="PART=N",
        help="override a part's N (e.g. scale=5000 when 10k is too slow here)",
    )
    parser.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument of the operator under test, e.g. --operator-arg=--workers=16",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the operator with py-spy (pip install py-spy) into DIR/<namespace>.txt",
    )
    parser.add_argument(
        "--agent-image",
        help="agent image to size: localhost/REPO:TAG (buildah) or HOST:PORT/REPO:TAG (registry)",
    )
    parser.add_argument("--timeout", type=float, default=540, help="per wait, seconds")
    opts = parser.parse_args(argv)
    # `timeout`/a CI runner's SIGTERM unwinds like Ctrl-C: the operator child is stopped and
    # the bench's namespace deleted (finally blocks), not left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parts = opts.only or list(PARTS)
    sizes = {part: both[0 if opts.quick else 1] for part, both in SIZES.items()}
    for item in opts.size:
        part, _, n = item.partition("=")
        if part not in SIZES or not n.isdigit():
            parser.error(f"--size {item!r}: want PART=N, PART one of {', '.join(SIZES)}")
        sizes[part] = int(n)
    docs = opts.docs or (None if opts.quick else ROOT / "docs" / "benchmarks.md")

    operator_proc.EXTRA_ARGS[:] = opts.operator_arg
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
        operator_proc.PROFILES[:] = [opts.profile]
    session = None
    kubeconfig = opts.kubeconfig
    if kubeconfig is None and set(parts) - {"agent"}:
        from tests.cluster.fixtures import ClusterSession

        session = ClusterSession(None)
        if NODE_PARTS & set(parts) or not opts.control_plane_kubeconfig:
            needs_node = bool(NODE_PARTS & set(parts))
            kubeconfig = session.full().kubeconfig if needs_node else session.kubeconfig()
    control_plane = opts.control_plane_kubeconfig or kubeconfig
    try:
        results: dict[str, list[Metric]] = {}
        notes: list[str] = []
        if "handoff" in parts and kubeconfig:
            results["handoff"] = handoff(kubeconfig, opts.quick)
        for config, group in ((kubeconfig, NODE_PARTS), (control_plane, CONTROL_PLANE_PARTS)):
            mine = [p for p in parts if p in group and p != "handoff"]
            if config and mine:
                got, said = asyncio.run(cluster_parts(config, mine, sizes, opts.timeout))
                results.update(got)
                notes += said
        if "agent" in parts:
            runs = 5 if opts.quick else 20
            results["agent"] = agent.run(runs, runs, opts.agent_image)
    finally:
        if session is not None:
            session.close()

    facts = machine()
    facts["size"] = "quick (CI smoke test, not for quoting)" if opts.quick else "full"
    facts["operator"] = " ".join(
        ["python -m taskflow run", *operator_proc.OPERATOR_ARGS, *opts.operator_arg]
    )
    if opts.only and not opts.quick:
        # Parts run one at a time (each under the machine's lock) add up to the page.
        saved = _load(opts.results)
        for part, metrics in results.items():
            saved[part] = {"facts": facts, "notes": notes, "metrics": [asdict(m) for m in metrics]}
        opts.results.parent.mkdir(parents=True, exist_ok=True)
        opts.results.write_text(json.dumps(saved, indent=1))
        results = {p: [Metric(**m) for m in saved[p]["metrics"]] for p in PARTS if p in saved}
        notes = [
            f"{p}: run {saved[p]['facts']['date']} at {saved[p]['facts']['commit']}, operator "
            f"`{saved[p]['facts'].get('operator', '?')}`"
            for p in PARTS
            if p in saved
        ] + list(dict.fromkeys(n for p in PARTS if p in saved for n in saved[p]["notes"]))
    metrics = [m for part in PARTS for m in results.get(part, [])]
    notes += goals.notes({m.key: m.value for m in metrics})
    if "handoff" in parts and not results.get("handoff"):
        notes.append(
            f"{HANDOFF_MODULE} has no bench_rows() in this tree: its rows come from running "
            "`python benchmarks/handoff_bench.py` on its own (docs/agent.md has its figures)"
        )
    print(text_table(metrics))
    for line in bench_lines(metrics):
        print(line)
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(markdown(metrics, facts, [*METHOD, *notes]))
        print(f"wrote {docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
