"""``$(steps.STEP.results.NAME)`` references in a Task (pure).

The agent substitutes them at run time (docs/agent.md); here they are checked before any pod
exists, so that a reference to an unknown step, to a later step or to a result the step does
not declare fails the Task at once (``InvalidSpec``) instead of in the middle of a run.

Why not CEL at apply: the CRD's cost estimate multiplies the largest possible text of a step
(every ``command``/``args`` item, ``env`` value and ``script`` at its maximum size) by the
64 steps and the regex; any rule that scans them all is estimated far past the API server's
limit of 10,000,000 per rule, whatever the rule does per reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from taskflow.api.task import RESULT_REF_PATTERN, Step, Task

_REF: Final = re.compile(RESULT_REF_PATTERN)

Ref = tuple[str, str]  # (step, result)


def texts(step: Step) -> Iterator[str]:
    """Where the agent substitutes references: command, args, env values, the script."""
    yield from step.command
    yield from step.args
    for e in step.env:
        value = e.get("value")
        if isinstance(value, str):
            yield value
    if step.script is not None:
        yield step.script


def references(step: Step) -> list[Ref]:
    """Every distinct reference in ``step``, in order of first appearance."""
    seen: dict[Ref, None] = {}
    for text in texts(step):
        for m in _REF.finditer(text):
            seen.setdefault((m.group(1), m.group(3)), None)
    return list(seen)


def reference_problem(task: Task) -> str | None:
    """The first reference that cannot resolve, described; None when all can."""
    steps = task.spec.steps
    index = {s.name: i for i, s in enumerate(steps)}
    for i, step in enumerate(steps):
        for name, result in references(step):
            ref = f"$(steps.{name}.results.{result})"
            j = index.get(name)
            if j is None:
                return f"step {step.name}: {ref} names no step of this Task"
            if j >= i:
                return f"step {step.name}: {ref} names a step that has not run before it"
            if all(r.name != result for r in steps[j].results):
                return f"step {step.name}: {ref}: step {name} declares no result {result!r}"
    return None


def result_path(step: str, result: str) -> str:
    """The file a step writes a result to (what ``$(results.NAME.path)`` becomes)."""
    return f"/taskflow/run/{step}/results/{result}"
