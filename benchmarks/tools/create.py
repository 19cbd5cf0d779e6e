"""The ``create`` part's rows for operator variants (experiments: workers, limits): raw pods,
then one Task row per ``--variant`` (see :mod:`benchmarks.create` for what is timed).

    python -m benchmarks.tools.create --kubeconfig K -n 500 --variant "--workers=16" ...
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import kubeops, operator_proc
from benchmarks.create import Timing, jobs, raw, tasks
from benchmarks.operator_proc import DEFAULT_ARGS
from taskflow.engine.kube import connect


def _row(what: str, t: Timing) -> str:
    return f"{what:40s} p50 {t.p50_ms:8.0f} ms  p99 {t.p99_ms:8.0f} ms  {t.per_s:7.1f}/s"


async def experiment(
    kubeconfig: str, n: int, variants: Sequence[str], with_jobs: bool, within: float
) -> None:
    kube = await connect(kubeconfig=kubeconfig)
    out: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    try:
        await kubeops.ensure_crd(kube)
        r = await raw(kube, n, within)
        out(_row("raw pods", r))
        if with_jobs:
            out(_row("Jobs", await jobs(kube, n, within)))
        for variant in variants:
            t = await tasks(kube, kubeconfig, n, within, DEFAULT_ARGS, shlex.split(variant))
            out(_row(f"Tasks {variant or '(defaults)'}", t) + f"  {t.per_s / r.per_s:.3f}x raw")
    finally:
        await kube.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tools.create", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='operator arguments of one Task row, e.g. "--workers=16" ("" = its defaults)',
    )
    parser.add_argument("--jobs", action="store_true", help="a Jobs row too")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy each operator run")
    opts = parser.parse_args(argv)
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
        operator_proc.PROFILES[:] = [opts.profile]
    started = time.monotonic()
    asyncio.run(experiment(opts.kubeconfig, opts.n, opts.variant or [""], opts.jobs, opts.timeout))
    print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
