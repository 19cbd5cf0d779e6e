"""The burst of Tasks each scenario runs, and the outcome each Task's spec deserves (pure)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from taskflow import api

IMAGE: Final = "busybox:1.28"  # the harness's local stand-in, on the node already
#: Which kinds, in which order, repeat every len(PATTERN) Tasks: mostly quick, some 5-10 s,
#: one up to 30 s, a few failing at a known step, one failing again on its retry.
PATTERN: Final = (
    "long",
    "multi",
    "multi",
    "multi",
    "multi",
    "fail",
    "fail",
    "retry",
    *(["quick"] * 17),
)


@dataclass(frozen=True)
class Expected:
    """The final status a Task's steps deserve."""

    word: str  # Successful | Failure
    failed_step: str | None  # the step that exits non-zero (Failure)
    attempts: int  # pods it must have had, one per attempt


def _step(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script]}


def task_doc(name: str, kind: str, i: int, executor: str = "kubelet") -> dict[str, Any]:
    """The ``i``-th Task of the burst, of ``kind`` (one of PATTERN's)."""
    spec: dict[str, Any] = {"executor": executor}
    if kind == "quick":
        spec["steps"] = [_step("run", "true")]
    elif kind == "multi":
        spec["steps"] = [
            _step("s1", "true"),
            _step("s2", f"sleep {5 + i % 6}"),
            _step("s3", "true"),
        ]
    elif kind == "long":
        spec["steps"] = [
            _step("s1", "true"),
            _step("s2", f"sleep {20 + 5 * (i // len(PATTERN) % 3)}"),
        ]
    elif kind == "fail":
        spec["steps"] = [_step("s1", "true"), _step("s2", "exit 3"), _step("s3", "true")]
    elif kind == "retry":
        spec["steps"] = [_step("s1", "exit 4"), _step("s2", "true")]
        spec["retries"] = 1
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "labels": {"chaos.taskflow/kind": kind}},
        "spec": spec,
    }


def burst(n: int, executors: Sequence[str] = ("kubelet",)) -> list[dict[str, Any]]:
    """N Tasks, the same N every run (deterministic mix); the executors take turns (PATTERN's
    length is odd, so each kind runs under each of two executors)."""
    return [
        task_doc(f"t{i:03d}", PATTERN[i % len(PATTERN)], i, executors[i % len(executors)])
        for i in range(n)
    ]


def _exit_code(step: Mapping[str, Any]) -> int:
    """What the step's command exits with, for the commands :func:`task_doc` writes (``true``,
    ``sleep N``, ``exit N`` under ``sh -c``)."""
    command = list(step.get("command") or [])
    if command[:2] == ["sh", "-c"] and len(command) == 3:
        words = shlex.split(command[2])
        if words[:1] == ["exit"]:
            return int(words[1])
        if words[:1] in (["true"], ["sleep"]):
            return 0
    if command == ["true"]:
        return 0
    raise ValueError(f"cannot tell what {command!r} exits with")


def expected(doc: Mapping[str, Any]) -> Expected:
    """Steps run in order until one exits non-zero: that one fails the attempt, and a
    failing step fails every retry alike (``spec.retries`` more attempts, each a pod)."""
    spec = doc["spec"]
    for step in spec["steps"]:
        if _exit_code(step) != 0:
            return Expected("Failure", step["name"], 1 + int(spec.get("retries", 0)))
    return Expected("Successful", None, 1)
