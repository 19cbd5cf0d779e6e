"""taskflow-agent, every measurement of the ``agent`` part printed (:mod:`benchmarks.agent`
says what each is). Real processes on this machine; no cluster.

    python -m benchmarks.tools.agent                       # builds the binary (cached)
    python -m benchmarks.tools.agent --binary PATH --waiters 20 --runs 20
    python -m benchmarks.tools.agent --image localhost/taskflow/agent:dev   # + image size
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.agent import cached_binary, handoff, idle, startup, wakeup


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--binary", type=Path, help="the static taskflow-agent (default: build)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--waiters", type=int, default=20)
    parser.add_argument("--chain", type=int, default=11, help="steps in the hand-off chain")
    parser.add_argument("--image", help="a built agent image: report its size (buildah)")
    opts = parser.parse_args()
    binary = opts.binary or cached_binary()
    rows: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
        t = Path(tmp)
        rows.update(startup(binary, opts.runs, t))
        for mode in ("inotify", "poll"):
            rows.update(idle(binary, opts.waiters, mode, t))
        for mode, interval in (("inotify", "50ms"), ("poll", "50ms"), ("poll", "10ms")):
            label = mode if mode == "inotify" else f"poll {interval}"
            rows[f"wake-up, {label}, median of {opts.runs} (ms)"] = wakeup(
                binary, opts.runs, mode, interval, t
            )
        gaps = handoff(binary, opts.chain, t)
        rows[f"hand-off between 1 s steps, median of {len(gaps)} (ms)"] = statistics.median(gaps)
        rows["hand-off, max (ms)"] = max(gaps)
    rows["binary size (MB)"] = binary.stat().st_size / 1e6
    if opts.image:
        out = subprocess.run(
            ["buildah", "images", "--format", "{{.Size}}", opts.image],
            capture_output=True,
            text=True,
            check=False,
        )
        rows["image size (buildah)"] = out.stdout.strip() or out.stderr.strip()
    load = os.getloadavg()
    print(f"taskflow-agent benchmark ({binary}; {os.cpu_count()} CPUs, load {load[0]:.1f})")
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        shown = f"{value:10.1f}" if isinstance(value, float) else f"{value:>10}"
        print(f"  {key:<{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
