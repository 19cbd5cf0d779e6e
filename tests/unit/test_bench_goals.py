"""benchmarks/goals.py: notes for the goals a run misses (pure)."""

from __future__ import annotations

import pytest
from benchmarks.goals import notes

FLOORS = {"rss.python_mb": 11.0, "rss.imports_mb": 75.0}


def test_goals_met_give_no_notes() -> None:
    run = {"burst.ratio": 0.95, "scale.tasks": 10_000, "rss.idle_mb": 40.0}
    assert notes({**run, "rss.tasks_10k_mb": 100.0}) == []


def test_burst_short_of_its_goal_says_by_how_much() -> None:
    (note,) = notes({"burst.ratio": 0.6})
    assert "0.60x" in note
    assert "25% short" in note


def test_rss_over_its_goal_names_the_floor_and_the_per_task_cost() -> None:
    run = {"scale.tasks": 10_000, "rss.idle_mb": 85.0, "rss.tasks_10k_mb": 185.0, **FLOORS}
    (note,) = notes(run)
    assert "185 MB (measured)" in note
    assert "65 MB (1.54x) over" in note
    assert "10.0 KB per Task" in note
    assert "75 MB is a bare python (11 MB)" in note


@pytest.mark.parametrize(("top", "over"), [(95.0, True), (88.0, False)])
def test_a_smaller_run_is_extrapolated_to_10k(top: float, over: bool) -> None:
    (note,) = notes({"scale.tasks": 1000, "rss.idle_mb": 85.0, "rss.tasks_10k_mb": top})
    assert "extrapolated linearly from 1000 Tasks" in note
    assert ("misses its goal" in note) is over
    if over:
        assert "185 MB" in note


def test_missing_values_give_no_notes() -> None:
    assert notes({"burst.ratio": None, "rss.tasks_10k_mb": 300.0}) == []


def test_handoff_over_its_goals_says_by_how_much() -> None:
    run = {
        "handoff20.agent_mode_s": 7.0,
        "handoff20.parallel_floor_s": 5.0,
        "handoff20.kubelet_mode_s": 21.0,
        "handoff20.init_floor_s": 20.0,
        "handoff.agent_long_step_ms": 12.5,
    }
    agent, gap = notes(run)
    assert "agent mode takes 1.40x the parallel floor (goal <= 1.3x), 0.5 s over" in agent
    assert "12.5 ms between 1 s steps (goal <= 10 ms), 2.5 ms over" in gap


def test_handoff_within_its_goals_gives_no_notes() -> None:
    run = {
        "handoff20.agent_mode_s": 5.2,
        "handoff20.parallel_floor_s": 5.0,
        "handoff20.kubelet_mode_s": 21.2,
        "handoff20.init_floor_s": 21.5,
        "handoff.agent_long_step_ms": 1.0,
    }
    assert notes(run) == []


@pytest.mark.parametrize(("ratio", "short"), [(0.1, "60% short"), (0.3, None)])
def test_create_short_of_its_goal_says_by_how_much(ratio: float, short: str | None) -> None:
    got = notes({"create.ratio": ratio})
    if short is None:
        assert got == []
    else:
        (note,) = got
        assert "0.100x" in note
        assert short in note
