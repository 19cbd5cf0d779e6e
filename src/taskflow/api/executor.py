"""Which executor runs a Task, and the checks of the agent executor's fields (pure).

``$(steps.STEP.results.NAME)`` references: the agent substitutes them at run time
(docs/agent.md). The admission policy (:mod:`taskflow.api.policy`) refuses bad ones at
apply; here they are checked again before any pod exists, for a Task the policy let
through (past its cost budget, or no policy installed), so that a reference to an unknown
step, to a later step or to a result the step does not declare fails the Task at once
(``InvalidSpec``) instead of in the middle of a run.

Why not the CRD's CEL: its cost estimate multiplies the largest possible text of a step
(every ``command``/``args`` item, ``env`` value and ``script`` at its maximum size) by the
64 steps and the regex; any rule that scans them all is estimated far past the API server's
limit of 10,000,000 per rule, whatever the rule does per reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from taskflow.api.task import (
    AGENT_FIELDS_MESSAGE,
    EXECUTOR_AGENT,
    EXECUTOR_KUBELET,
    INSTALL_CONTAINER,
    RESULT_REF_PATTERN,
    RETRY_FIELDS_MESSAGE,
    Step,
    Task,
)

_REF: Final = re.compile(RESULT_REF_PATTERN)

Ref = tuple[str, str]  # (step, result)


def _uses_outcome_fields(step: Step) -> bool:
    return step.timeout is not None or step.on_error is not None or bool(step.results)


def _uses_retries(step: Step) -> bool:
    return step.retries > 0 or step.retry_delay is not None


def uses_agent_fields(task: Task) -> bool:
    return any(_uses_outcome_fields(s) or _uses_retries(s) for s in task.spec.steps)


def executor_of(task: Task, default_executor: str) -> str:
    """The Task's executor: spec.executor; unset, the agent when a step uses its fields
    (timeout, onError, results, retries), else the operator's default
    (``--default-executor``)."""
    if task.spec.executor is not None:
        return task.spec.executor
    if uses_agent_fields(task):
        return EXECUTOR_AGENT
    return default_executor


def agent_problem(task: Task, default_executor: str) -> str | None:
    """Why ``task`` cannot run under its executor (the agent's fields and references)."""
    if executor_of(task, default_executor) == EXECUTOR_KUBELET:
        # in the words of the CRD's rules (TaskSpec), which refuse the same at apply
        steps = task.spec.steps
        if any(_uses_outcome_fields(s) for s in steps):
            return AGENT_FIELDS_MESSAGE
        if any(_uses_retries(s) for s in steps):
            return RETRY_FIELDS_MESSAGE
        return None
    if any(s.name == INSTALL_CONTAINER for s in task.spec.steps):
        return f"the step name {INSTALL_CONTAINER} is taken by the agent's install container"
    return reference_problem(task)


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
                return f"step {step.name}: {ref}: step {name} declares no result {result}"
    return None


def result_path(step: str, result: str) -> str:
    """The file a step writes a result to (what ``$(results.NAME.path)`` becomes)."""
    return f"/taskflow/run/{step}/results/{result}"
