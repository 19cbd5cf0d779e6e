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
``agent`` (no cluster): one module each, all in :data:`PARTS`. One-off measurements outside
this table are in :mod:`benchmarks.tools`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from taskflow.engine.kube import Kube, connect

from . import agent, burst, create, goals, handoff, kubeops, latency, operator_proc, scale
from .report import Metric, bench_lines, markdown, text_table

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Context:
    """What a part is run with: ``kube`` is connected to ``kubeconfig`` for a cluster tier."""

    kube: Kube | None
    kubeconfig: str
    n: int
    quick: bool
    within: float
    agent_image: str | None

    def cluster(self) -> Kube:
        assert self.kube is not None, "a cluster part run without a cluster"
        return self.kube


Tier = Literal["node", "control-plane", "none"]


@dataclass(frozen=True)
class Part:
    """One part of the table. ``tier``: ``node`` needs a kubelet, ``control-plane`` pins its
    pods to no node (so any cluster behaves as the control-plane tier), ``none`` needs no
    cluster. ``sizes``: its N (quick, full), which ``--size PART=N`` overrides."""

    tier: Tier
    sizes: tuple[int, int] | None
    run: Callable[[Context], Awaitable[list[Metric]]]


def _on_cluster(
    run: Callable[[Kube, str, int, float], Awaitable[list[Metric]]],
) -> Callable[[Context], Awaitable[list[Metric]]]:
    """A cluster part's ``run(kube, kubeconfig, n, within)`` as the table's runner."""
    return lambda c: run(c.cluster(), c.kubeconfig, c.n, c.within)


async def _handoff(c: Context) -> list[Metric]:
    return handoff.run(c.kubeconfig, c.quick)


async def _agent(c: Context) -> list[Metric]:
    return agent.run(c.n, c.n, c.agent_image)


# The table's order is the page's; the full sizes are those the goals are stated at.
PARTS: dict[str, Part] = {
    "handoff": Part("node", None, _handoff),
    "burst": Part("node", (20, 200), _on_cluster(burst.run)),
    "create": Part("node", (20, 500), _on_cluster(create.run)),
    "latency": Part("control-plane", (50, 2000), _on_cluster(latency.run)),
    "scale": Part("control-plane", (200, 10_000), _on_cluster(scale.run)),
    "agent": Part("none", (5, 20), _agent),
}
SIZES = {name: part.sizes for name, part in PARTS.items() if part.sizes is not None}
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


async def run_parts(
    kubeconfig: str | None, parts: Sequence[str], sizes: dict[str, int], opts: argparse.Namespace
) -> tuple[dict[str, list[Metric]], list[str]]:
    """Run ``parts`` (one tier's) one after another, on ``kubeconfig`` if they need a cluster."""
    results: dict[str, list[Metric]] = {}
    notes: list[str] = []
    kube = await connect(kubeconfig=kubeconfig) if kubeconfig is not None else None
    try:
        if kube is not None:
            notes += await _cluster_notes(kube, parts)
        for part in parts:
            n = sizes.get(part, 0)
            context = Context(kube, kubeconfig or "", n, opts.quick, opts.timeout, opts.agent_image)
            started = time.monotonic()
            results[part] = await PARTS[part].run(context)
            size = f"N={n}, " if part in sizes else ""
            print(f"{part}: {size}{time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        if kube is not None:
            await kube.close()
    return results, notes


async def _cluster_notes(kube: Kube, parts: Sequence[str]) -> list[str]:
    """The CRD installed, and what a reader of the page must know about the cluster."""
    notes: list[str] = []
    await kubeops.ensure_crd(kube)
    others = await kubeops.other_operators(kube)
    if others:
        notes.append(
            "another taskflow operator watching all namespaces ran during this run "
            f"({', '.join(others)}): it also reconciled the bench's Tasks"
        )
    ran = [p for p in parts if PARTS[p].tier == "control-plane"]
    if ran:
        nodes = await kubeops.node_count(kube)
        where = (
            "a control-plane tier (no node, no scheduler, no kubelet)"
            if nodes == 0
            else f"a cluster with {nodes} node(s), no kubelet touching the pinned pods"
        )
        notes.append(f"{', '.join(ran)}: served by {where}")
    return notes


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run only these parts")
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
    return parser


def _sizes(parser: argparse.ArgumentParser, opts: argparse.Namespace) -> dict[str, int]:
    """Each sized part's N: quick or full, then ``--size PART=N``."""
    sizes = {part: both[0 if opts.quick else 1] for part, both in SIZES.items()}
    for item in opts.size:
        part, _, n = item.partition("=")
        if part not in SIZES or not n.isdigit():
            parser.error(f"--size {item!r}: want PART=N, PART one of {', '.join(SIZES)}")
        sizes[part] = int(n)
    return sizes


def _run_tiers(
    opts: argparse.Namespace, parts: list[str], sizes: dict[str, int]
) -> tuple[dict[str, list[Metric]], list[str]]:
    """Every part on its tier's cluster, a harness cluster started (and stopped) if none is
    given."""
    session = None
    kubeconfig = opts.kubeconfig
    tiers = {PARTS[p].tier for p in parts}
    if kubeconfig is None and tiers - {"none"}:
        from tests.cluster.fixtures import ClusterSession

        session = ClusterSession(None)
        if "node" in tiers or not opts.control_plane_kubeconfig:
            kubeconfig = session.full().kubeconfig if "node" in tiers else session.kubeconfig()
    clusters: dict[Tier, str | None] = {
        "node": kubeconfig,
        "control-plane": opts.control_plane_kubeconfig or kubeconfig,
        "none": None,
    }
    results: dict[str, list[Metric]] = {}
    notes: list[str] = []
    try:
        for tier, config in clusters.items():
            mine = [p for p in parts if PARTS[p].tier == tier]
            if mine and (config or tier == "none"):
                got, said = asyncio.run(run_parts(config, mine, sizes, opts))
                results.update(got)
                notes += said
    finally:
        if session is not None:
            session.close()
    return results, notes


def _merge_saved(
    path: Path, results: dict[str, list[Metric]], notes: list[str], facts: dict[str, str]
) -> tuple[dict[str, list[Metric]], list[str]]:
    """This run's parts saved into ``path``, and every saved part back, so that parts run one
    at a time (each under the machine's lock) add up to the page."""
    saved = _load(path)
    for part, metrics in results.items():
        saved[part] = {"facts": facts, "notes": notes, "metrics": [asdict(m) for m in metrics]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1))
    merged = {p: [Metric(**m) for m in saved[p]["metrics"]] for p in PARTS if p in saved}
    said = [
        f"{p}: run {saved[p]['facts']['date']} at {saved[p]['facts']['commit']}, operator "
        f"`{saved[p]['facts'].get('operator', '?')}`"
        for p in PARTS
        if p in saved
    ] + list(dict.fromkeys(n for p in PARTS if p in saved for n in saved[p]["notes"]))
    return merged, said


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    opts = parser.parse_args(argv)
    # `timeout`/a CI runner's SIGTERM unwinds like Ctrl-C: the operator child is stopped and
    # the bench's namespace deleted (finally blocks), not left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parts = [p for p in PARTS if p in (opts.only or PARTS)]
    sizes = _sizes(parser, opts)
    docs = opts.docs or (None if opts.quick else ROOT / "docs" / "benchmarks.md")

    operator_proc.EXTRA_ARGS[:] = opts.operator_arg
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
        operator_proc.PROFILES[:] = [opts.profile]
    results, notes = _run_tiers(opts, parts, sizes)

    facts = machine()
    facts["size"] = "quick (CI smoke test, not for quoting)" if opts.quick else "full"
    facts["operator"] = " ".join(
        ["python -m taskflow run", *operator_proc.OPERATOR_ARGS, *opts.operator_arg]
    )
    if opts.only and not opts.quick:
        results, notes = _merge_saved(opts.results, results, notes, facts)
    metrics = [m for part in PARTS for m in results.get(part, [])]
    notes += goals.notes({m.key: m.value for m in metrics})
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
