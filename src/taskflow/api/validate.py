"""What the CRD schema checks, again in Python for Tasks stored before it (pure)."""

from __future__ import annotations

from taskflow.api.task import Task


def spec_problem(task: Task) -> str | None:
    """Why ``task`` cannot be rendered, or None. The CRD schema rejects all of these at apply
    time; this guards against Tasks stored before the schema was installed."""
    steps = task.spec.steps
    if not steps:
        return "a Task needs at least one step"
    names = [s.name for s in steps]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        return f"step names must be unique (duplicated: {', '.join(dups)})"
    for s in steps:
        if s.script is not None and s.command:
            return f"step {s.name}: a step has either script or command, not both"
    return None
