"""benchmarks/report.py: the bench's renderings (pure)."""

from __future__ import annotations

import pytest
from benchmarks.report import Metric, bench_lines, markdown, percentile, ratio, shown, text_table


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0], 50, 1.0),
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 100, 100.0),
        ([float(i) for i in range(1, 11)], 99, 10.0),
        ([2.0, 9.0], 0, 2.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, want: float) -> None:
    assert percentile(values, q) == want


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize(
    ("a", "b", "want"), [(4.0, 2.0, 2.0), (1.0, 0.0, None), (None, 2.0, None), (1.0, None, None)]
)
def test_ratio(a: float | None, b: float | None, want: float | None) -> None:
    assert ratio(a, b) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (0.0, "0"),
        (0.012345, "0.0123"),
        (1.2345, "1.23"),
        (12.345, "12.3"),
        (123.45, "123"),
        (12345.6, "12346"),
        (-1.5, "-1.50"),
    ],
)
def test_shown_three_significant_figures(value: float | None, want: str) -> None:
    assert shown(value) == want


def test_a_key_must_be_dotted_lower_case() -> None:
    for bad in ("burst", "Burst.tasks", "burst.tasks per s", "burst..x"):
        with pytest.raises(ValueError, match="bad BENCH key"):
            Metric(bad, "x", 1.0, "s")


METRICS = [
    Metric("burst.tasks_per_s", "200 Tasks", 12.345, "Tasks/s", ">= 0.8x | raw"),
    Metric("agent.image_mb", "agent image", None, "MB", note="no image"),
]


def test_bench_lines_one_per_metric() -> None:
    assert bench_lines(METRICS) == ["BENCH burst.tasks_per_s=12.3", "BENCH agent.image_mb=n/a"]


def test_text_table_aligns_columns() -> None:
    lines = text_table(METRICS).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("key")
    assert set(lines[1]) <= {"-", " "}
    # the value column is right-aligned: both values end in the same column
    ends = {line.index(v) + len(v) for line, v in zip(lines[2:], ("12.3", "n/a"), strict=True)}
    assert len(ends) == 1
    assert "agent image (no image)" in lines[3]


def test_markdown_page_has_facts_a_well_formed_table_and_notes() -> None:
    page = markdown(METRICS, {"date": "2026-12-02 03:00 UTC", "commit": "abc"}, ["why"])
    lines = page.splitlines()
    assert "- date: 2026-12-02 03:00 UTC" in lines
    assert "- commit: abc" in lines
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 2 + len(METRICS)
    # every row has the header's cell count; a "|" inside a cell is escaped
    cells = {len(row.replace("\\|", "").split("|")) for row in rows}
    assert cells == {7}
    assert "| burst.tasks_per_s | 12.3 | Tasks/s | >= 0.8x \\| raw | 200 Tasks |" in rows
    assert lines[-1] == "- why"
