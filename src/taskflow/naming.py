"""Names taskflow gives to what it creates (pure): the pod of a Task's attempt and
hash-shortened label values. Below render and status, which both need them."""

from __future__ import annotations

import hashlib
from typing import Final

#: Longest pod name / label value taskflow makes (a DNS label; label values share the cap).
MAX_NAME: Final = 63
POD_SUFFIX: Final = "-pod"


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def pod_name(task_name: str, attempt: int = 1) -> str:
    """``<task-name>-pod`` (``<task-name>-pod-<attempt>`` for a retry); past 63 characters
    ``<prefix>-<hash8>-pod[-<attempt>]`` (63 characters). One name per attempt, so that no
    attempt ever runs twice (a second create is a 409)."""
    suffix = POD_SUFFIX if attempt == 1 else f"{POD_SUFFIX}-{attempt}"
    name = task_name + suffix
    if len(name) <= MAX_NAME:
        return name
    keep = MAX_NAME - len(suffix) - 9
    return f"{task_name[:keep].rstrip('-.')}-{short_hash(task_name)}{suffix}"


def label_value(value: str) -> str:
    """``value`` if it is short enough for a label value, else a hash-shortened form."""
    if len(value) <= MAX_NAME:
        return value
    return f"{value[: MAX_NAME - 9].rstrip('-._')}-{short_hash(value)}"
