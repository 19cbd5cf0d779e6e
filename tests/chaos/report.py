"""The table `nox -s chaos` prints and its verdict line (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checks import Verdict

HEADER = ("scenario", "Tasks", "lost", "duplicated", "wrong status", "converge s", "healthy")


@dataclass
class Row:
    scenario: str
    verdict: Verdict
    converge_s: float | None  # from the fault until every Task was final; None: never
    healthy: bool
    notes: tuple[str, ...] = ()  # evidence (e.g. the 429s) and why a row failed
    fault_hit: bool = True  # False: the fault did not demonstrably happen (proves nothing)

    @property
    def ok(self) -> bool:
        v = self.verdict
        clean = v.lost == 0 and v.duplicated == 0 and v.wrong == 0
        return self.healthy and self.fault_hit and clean


def _cells(row: Row) -> tuple[str, ...]:
    v = row.verdict
    seconds = "-" if row.converge_s is None else f"{row.converge_s:.0f}"
    return (
        row.scenario,
        str(v.tasks),
        str(v.lost),
        str(v.duplicated),
        str(v.wrong),
        seconds,
        "yes" if row.healthy else "NO",
    )


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable as text, pasteable into the README)."""
    lines = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([fmt(HEADER), rule, *(fmt(c) for c in lines[1:])])


def summary(rows: Sequence[Row]) -> str:
    tasks = sum(r.verdict.tasks for r in rows)
    lost = sum(r.verdict.lost for r in rows)
    dup = sum(r.verdict.duplicated for r in rows)
    wrong = sum(r.verdict.wrong for r in rows)
    line = f"chaos: {tasks} tasks, lost {lost}, duplicated {dup}, wrong {wrong}"
    unhealthy = [r.scenario for r in rows if not r.healthy]
    if unhealthy:
        line += f", unhealthy: {', '.join(unhealthy)}"
    missed = [r.scenario for r in rows if not r.fault_hit]
    if missed:
        line += f", fault missed: {', '.join(missed)}"
    return line


def passed(rows: Sequence[Row]) -> bool:
    return bool(rows) and all(r.ok for r in rows)
