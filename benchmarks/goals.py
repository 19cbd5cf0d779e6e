"""The goals (docs/benchmarks.md), checked against one run's values: a note for each goal
missed (by how much, and what bounds it, from the run's own floor measurements). Pure."""

from __future__ import annotations

from collections.abc import Mapping

BURST_RATIO = 0.8  # burst.tasks_per_s >= 0.8x burst.raw_pods_per_s
CREATE_RATIO = 0.25  # create.tasks_per_s >= 0.25x create.raw_pods_per_s (operator defaults)
RSS_10K_MB = 120.0  # rss.tasks_10k_mb < 120 MB
AGENT_X = 1.3  # handoff20.agent_mode_s <= 1.3x handoff20.parallel_floor_s
KUBELET_X = 1.1  # handoff20.kubelet_mode_s <= 1.1x handoff20.init_floor_s
LONG_STEP_MS = 10.0  # handoff.agent_long_step_ms <= 10
FULL_SCALE = 10_000


def notes(v: Mapping[str, float | None]) -> list[str]:
    out: list[str] = []
    r = v.get("burst.ratio")
    if r is not None and r < BURST_RATIO:
        out.append(
            f"burst misses its goal: Tasks/s is {r:.2f}x the raw pods/s (goal >= "
            f"{BURST_RATIO}x), {1 - r / BURST_RATIO:.0%} short."
        )
    c = v.get("create.ratio")
    if c is not None and c < CREATE_RATIO:
        out.append(
            f"create misses its goal: Tasks/s at the operator's defaults is {c:.3f}x the raw "
            f"pods/s (goal >= {CREATE_RATIO}x), {1 - c / CREATE_RATIO:.0%} short."
        )
    for mode, base_key, goal in (
        ("agent_mode_s", "parallel_floor_s", AGENT_X),
        ("kubelet_mode_s", "init_floor_s", KUBELET_X),
    ):
        got, base = v.get(f"handoff20.{mode}"), v.get(f"handoff20.{base_key}")
        if got is not None and base and got / base > goal:
            out.append(
                f"handoff misses its goal: {mode.removesuffix('_s').replace('_', ' ')} takes "
                f"{got / base:.2f}x the {base_key.removesuffix('_s').replace('_', ' ')} (goal <= "
                f"{goal}x), {got - goal * base:.1f} s over."
            )
    gap = v.get("handoff.agent_long_step_ms")
    if gap is not None and gap > LONG_STEP_MS:
        out.append(
            f"handoff misses its goal: {gap:.1f} ms between 1 s steps (goal <= "
            f"{LONG_STEP_MS:g} ms), {gap - LONG_STEP_MS:.1f} ms over."
        )
    n, idle, top = v.get("scale.tasks"), v.get("rss.idle_mb"), v.get("rss.tasks_10k_mb")
    if n and idle is not None and top is not None:
        per_task_kb = (top - idle) / n * 1000
        at_10k = top if n >= FULL_SCALE else idle + per_task_kb * FULL_SCALE / 1000
        how = "measured" if n >= FULL_SCALE else f"extrapolated linearly from {n:.0f} Tasks"
        if at_10k >= RSS_10K_MB:
            floor = v.get("rss.imports_mb")
            python = v.get("rss.python_mb")
            why = (
                f"; of the idle {idle:.0f} MB, {floor:.0f} MB is a bare python ({python:.0f} MB) "
                "importing what the operator imports (aiohttp, msgspec, uvloop, prometheus_client, "
                "kubernetes-asyncio's loader)"
                if floor is not None and python is not None
                else ""
            )
            out.append(
                f"rss at 10k Tasks misses its goal: {at_10k:.0f} MB ({how}) against < "
                f"{RSS_10K_MB:.0f} MB, {at_10k - RSS_10K_MB:.0f} MB ({at_10k / RSS_10K_MB:.2f}x) "
                f"over. It is the idle process plus {per_task_kb:.1f} KB per Task and its pod"
                f"{why}. `python -m benchmarks.tools.scale_profile` shows where the per-Task "
                "part goes."
            )
        elif n < FULL_SCALE:
            out.append(f"rss at 10k Tasks: {at_10k:.0f} MB, {how}.")
    return out
