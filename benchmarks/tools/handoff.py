"""Step hand-off on the real node, every variant's runs (the ``handoff`` part, printed in
full): see :mod:`benchmarks.handoff` for what is measured.

    flock /work/e2e.lock env KUBECONFIG=... python -m benchmarks.tools.handoff \\
        --registry 127.0.0.1:35000 [--runs 3] [--steps 20]

Prints a table and ``BENCH key=value`` lines.
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks.handoff import measure


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.handoff", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--registry", default=os.environ.get("TASKFLOW_TEST_REGISTRY"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--chain", type=int, default=11)
    parser.add_argument("--no-deploy", action="store_true", help="the operator is installed")
    opts = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig or not opts.registry:
        parser.error("needs KUBECONFIG and --registry (or TASKFLOW_TEST_REGISTRY)")
    walls, gaps = measure(
        kubeconfig, opts.registry, opts.runs, opts.steps, opts.chain, not opts.no_deploy
    )
    floor = statistics.median(walls["raw-parallel"])
    print(f"\n{opts.steps} no-op steps, median of {opts.runs} (create -> seen finished)")
    print(f"{'variant':<14}{'median s':>10}{'runs':>24}{'x parallel floor':>18}")
    for name, values in walls.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.1f}" for v in values)
        print(f"{name:<14}{med:>10.1f}{runs:>24}{med / floor:>18.2f}")
        print(f"BENCH handoff_{name.replace('-', '_')}_s={med:.2f}")
    print(f"BENCH agent_vs_parallel_floor={statistics.median(walls['agent']) / floor:.2f}")
    print(
        f"\nhand-off between {opts.chain} 'sleep 1' steps (agent timestamps): "
        f"median {statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms"
    )
    print(f"BENCH handoff_1s_steps_median_ms={statistics.median(gaps):.1f}")
    print(f"BENCH handoff_1s_steps_max_ms={max(gaps):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
