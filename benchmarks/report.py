"""The bench's results: one :class:`Metric` per ``BENCH`` key, and their three renderings
(the terminal table, the ``BENCH key=value`` lines, docs/benchmarks.md). Pure: no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# A BENCH key: dotted lower-case words (names other tools read, e.g. burst.tasks_per_s).
KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


@dataclass(frozen=True)
class Metric:
    key: str  # the BENCH key
    label: str  # what the table says (sizes included, so quick runs read as such)
    value: float | None  # None: not measured in this run (``note`` says why)
    unit: str
    goal: str = ""  # the goal it is held to, or a ratio that puts the value in context
    note: str = ""

    def __post_init__(self) -> None:
        if not KEY.match(self.key):
            raise ValueError(f"bad BENCH key {self.key!r}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank (p99 of 100 values is the 99th)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def shown(value: float | None) -> str:
    """Three significant figures at most, no exponent: 0.0123, 1.23, 12.3, 1234."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    digits = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{digits}f}"


def bench_lines(metrics: Iterable[Metric]) -> list[str]:
    """``BENCH key=value`` lines, one per metric (``n/a`` for a value not measured)."""
    return [f"BENCH {m.key}={shown(m.value)}" for m in metrics]


HEADER = ("key", "measured", "unit", "goal / context", "what")


def _rows(metrics: Iterable[Metric]) -> list[tuple[str, str, str, str, str]]:
    return [
        (m.key, shown(m.value), m.unit, m.goal, f"{m.label}{' (' + m.note + ')' if m.note else ''}")
        for m in metrics
    ]


def text_table(metrics: Sequence[Metric]) -> str:
    rows = [HEADER, *_rows(metrics)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(metrics: Sequence[Metric]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in _rows(metrics)]
    return "\n".join(lines)


def markdown(
    metrics: Sequence[Metric], machine: Mapping[str, str], notes: Sequence[str] = ()
) -> str:
    """docs/benchmarks.md: the run's facts (date, machine, commit, sizes), the table and the
    notes (how each number was taken, goals missed and why)."""
    facts = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    body = [
        "# Benchmarks",
        "",
        "Written by `nox -s bench` (`python -m benchmarks.run`); do not edit by hand. Every",
        "ratio compares numbers measured in the same run, on this machine; parts run one at a",
        "time (`--only`) say when and at which commit in the notes.",
        "",
        facts,
        "",
        markdown_table(metrics),
    ]
    if notes:
        body += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(body) + "\n"
