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


def run(runs: int, waiters: int, image: str | None) -> list[Metric]:
    """``image``: a built agent image, ``localhost/...`` (buildah's storage: uncompressed
    size) or ``HOST:PORT/REPO:TAG`` in a plain-HTTP registry (compressed, as pushed)."""
    binary = agent_bench.cached_binary()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        start = agent_bench.startup(binary, runs, Path(tmp))
        idle = agent_bench.idle(binary, waiters, "inotify", Path(tmp))
    image_mb, how = _image_mb(image) if image else (None, "")
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
            "agent.image_mb",
            f"agent image {image} ({how})" if image else "agent image",
            image_mb,
            "MB",
            note="" if image else "no --agent-image given: see agent.binary_mb",
        ),
        Metric(
            "agent.binary_mb",
            "static taskflow-agent executable",
            binary.stat().st_size / 1e6,
            "MB",
        ),
    ]


def _image_mb(image: str) -> tuple[float, str]:
    from tests.e2e import images

    if image.startswith("localhost/"):
        return images.image_size(image) / 1e6, "uncompressed, buildah"
    host, _, rest = image.partition("/")
    repo, _, tag = rest.rpartition(":")
    return images.registry_image_size(host, repo, tag) / 1e6, "compressed, as pushed"
