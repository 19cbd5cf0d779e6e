"""Label and annotation keys shared by the renderer, the status code and the engine."""

from __future__ import annotations

from typing import Final

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "taskflow"
TASK_NAME_LABEL: Final = "api.practice.com/task"
TASK_UID_LABEL: Final = "api.practice.com/task-uid"
#: which attempt of the Task the pod runs (1 = the first run; spec.retries adds more)
ATTEMPT_LABEL: Final = "api.practice.com/attempt"
#: on pods of the agent executor only (value ``agent``): the status reads their steps from
#: the agent's termination messages (kubelet pods carry no such label, as before)
EXECUTOR_LABEL: Final = "api.practice.com/executor"

#: Label selector matching every pod taskflow created (the engine's pod watch uses it).
MANAGED_BY_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"

#: Prefix of the pod annotations carrying step scripts. The key of step ``s`` is
#: ``script.api.practice.com/<s>``: the step name (a DNS label, <= 63 characters) is the
#: whole name part of the key, so every valid step name yields a valid annotation key
#: (``api.practice.com/script.<s>`` would overflow the 63-character name part).
SCRIPT_ANNOTATION_PREFIX: Final = "script.api.practice.com/"


def task_uid_selector(uid: str) -> str:
    """Label selector for the pod of the Task with this UID."""
    return f"{TASK_UID_LABEL}={uid}"


def script_annotation(step_name: str) -> str:
    """The pod annotation key holding the script of ``step_name``."""
    return SCRIPT_ANNOTATION_PREFIX + step_name
