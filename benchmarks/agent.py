"""The agent's numbers, taken by :mod:`benchmarks.agent_bench` (real processes on this
machine, no cluster): start-up cost, idle memory per waiting step, image size."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import agent_bench
from .report import Metric

START = "taskflow-agent step -- /bin/true, minus /bin/true (ms)"
RSS = "inotify: RSS per waiter, median (MB)"
PSS = "inotify: PSS per waiter, mean of {n} (MB)"


def run(runs: int, waiters: int, image: tuple[str, str, str] | None) -> list[Metric]:
    """``image``: (registry host:port, repository, tag) of a pushed agent image, if any."""
    binary = agent_bench.cached_binary()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        start = agent_bench.startup(binary, runs, Path(tmp))
        idle = agent_bench.idle(binary, waiters, "inotify", Path(tmp))
    image_mb: float | None = None
    note = "no agent image given (--agent-image): see agent.binary_mb"
    if image is not None:
        from tests.e2e.images import registry_image_size

        image_mb = registry_image_size(*image) / 1e6
        note = f"{image[1]}:{image[2]}, compressed, as pushed"
    return [
        Metric(
            "agent.start_ms",
            f"agent step -- /bin/true minus /bin/true, median of {runs}",
            start[START],
            "ms",
        ),
        Metric(
            "agent.idle_rss_mb",
            f"RSS per waiting step, median of {waiters}",
            idle[RSS],
            "MB",
            f"PSS {idle[PSS.format(n=waiters)]:.2f} MB (shared pages split)",
        ),
        Metric(
            "agent.image_mb", "agent image size", image_mb, "MB", note=note if not image_mb else ""
        ),
        Metric(
            "agent.binary_mb", "static taskflow-agent executable", binary.stat().st_size / 1e6, "MB"
        ),
    ]
