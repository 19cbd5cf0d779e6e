"""Task -> Pod: the pod the operator creates for a Task (pure; no cluster needed).

* One pod per Task and attempt, named :func:`pod_name` (``<task>-pod``, ``<task>-pod-2``
  for the first retry, hash-shortened past 63 characters), ``restartPolicy: Never``, the
  labels of :mod:`taskflow.labels` and a controller owner reference to the Task
  (``blockOwnerDeletion``).
* Steps run in spec order as the pod's init containers, except the last step, which is the
  pod's regular container. The kubelet enforces the order, stops at the first failure even
  while the operator is down, and sizes the pod by the largest step (max, not sum). Container
  name = step name; each container is the step verbatim (minus ``script``).
* A ``script`` travels in the pod annotation ``script.api.practice.com/<step>`` and is
  projected by one downward-API volume (``taskflow-scripts``, read-only at
  ``/taskflow/scripts``, file mode 0755); the step's command becomes that file, its args are
  kept. A script without a shebang gets ``#!/bin/sh``.
* An emptyDir ``taskflow-workspace`` is mounted at ``/workspace`` in every step that does not
  mount something there itself; user mounts are kept verbatim and pod-template volumes added.
* Steps without ``command`` are left alone: the image's ENTRYPOINT runs with the step's args.
* ``terminationMessagePolicy`` defaults to ``FallbackToLogsOnError`` so that a failing step's
  last log lines reach the Task's status; ``enableServiceLinks`` is off (a step's environment
  does not depend on which Services happen to exist in the namespace).

That is the ``kubelet`` executor. The ``agent`` executor (:func:`executor_of`) renders the pod
of docs/agent.md instead (:mod:`taskflow.render_agent`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from taskflow.api.refs import reference_problem
from taskflow.api.task import (
    AGENT_STEP_FIELDS,
    API_VERSION,
    EXECUTOR_AGENT,
    EXECUTOR_KUBELET,
    KIND,
    SCRIPTS_DIR,
    SCRIPTS_VOLUME,
    WORKSPACE_DIR,
    WORKSPACE_VOLUME,
    Step,
    Task,
)
from taskflow.labels import (
    ATTEMPT_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TASK_NAME_LABEL,
    TASK_UID_LABEL,
    script_annotation,
)
from taskflow.settings import DEFAULT_SETTINGS, Settings

MAX_NAME: Final = 63
POD_SUFFIX: Final = "-pod"
DEFAULT_SHEBANG: Final = "#!/bin/sh\n"
SCRIPT_MODE: Final = 0o755
DEFAULT_TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"


class RenderError(ValueError):
    """The Task cannot be turned into a pod (only for Tasks the CRD schema would reject)."""


class ImageLookupError(RenderError):
    """A step under the agent needs its image's ENTRYPOINT/CMD, which taskflow cannot read
    (yet): the Task ends ``Failure/ImageLookupFailed`` before any pod exists."""


#: The agent pod's init container that installs the agent (a step may not use the name).
INSTALL_CONTAINER: Final = "taskflow-install"


def uses_agent_fields(task: Task) -> bool:
    return any(
        s.timeout is not None or s.on_error is not None or s.results for s in task.spec.steps
    )


def executor_of(task: Task, settings: Settings = DEFAULT_SETTINGS) -> str:
    """The Task's executor: spec.executor; unset, the agent when a step uses its fields
    (timeout, onError, results), else the operator's default."""
    if task.spec.executor is not None:
        return task.spec.executor
    if uses_agent_fields(task):
        return EXECUTOR_AGENT
    return settings.default_executor


def _hash(text: str, n: int = 8) -> str:
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
    return f"{task_name[:keep].rstrip('-.')}-{_hash(task_name)}{suffix}"


def label_value(value: str) -> str:
    """``value`` if it is short enough for a label value, else a hash-shortened form."""
    if len(value) <= MAX_NAME:
        return value
    return f"{value[: MAX_NAME - 9].rstrip('-._')}-{_hash(value)}"


def pod_labels(task: Task, attempt: int = 1) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        TASK_NAME_LABEL: label_value(task.metadata.name),
        TASK_UID_LABEL: task.metadata.uid,
        ATTEMPT_LABEL: str(attempt),
    }


def normalize_script(script: str) -> str:
    """The file content for ``script``: LF line ends, a shebang at byte 0 (``#!/bin/sh``
    unless the script has its own)."""
    text = script.replace("\r\n", "\n")
    stripped = text.lstrip()
    if stripped.startswith("#!"):
        return stripped
    return DEFAULT_SHEBANG + text


def script_path(step_name: str) -> str:
    return f"{SCRIPTS_DIR}/{step_name}"


def _mounts_workspace(mounts: list[dict[str, Any]]) -> bool:
    return any(str(m.get("mountPath", "")).rstrip("/") == WORKSPACE_DIR for m in mounts)


def _container(step: Step) -> dict[str, Any]:
    c: dict[str, Any] = msgspec.to_builtins(step)
    for field in ("script", *AGENT_STEP_FIELDS):  # taskflow's fields, not the container's
        c.pop(field, None)
    mounts: list[dict[str, Any]] = list(c.get("volumeMounts", []))
    if step.script is not None:
        c["command"] = [script_path(step.name)]
        mounts.append({"name": SCRIPTS_VOLUME, "mountPath": SCRIPTS_DIR, "readOnly": True})
    if not _mounts_workspace(step.volume_mounts):
        mounts.append({"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR})
    if mounts:
        c["volumeMounts"] = mounts
    c.setdefault("terminationMessagePolicy", DEFAULT_TERMINATION_MESSAGE_POLICY)
    return c


def spec_problem(task: Task, settings: Settings = DEFAULT_SETTINGS) -> str | None:
    """Why ``task`` cannot be rendered, or None. The CRD schema rejects most of these at apply
    time (this guards against Tasks stored before the schema was installed); references to
    results are only checked here (see :mod:`taskflow.api.refs`)."""
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
    if executor_of(task, settings) == EXECUTOR_KUBELET:
        if uses_agent_fields(task):
            return "timeout, onError and results of a step need executor: agent"
        return None
    if INSTALL_CONTAINER in names:
        return f"the step name {INSTALL_CONTAINER} is taken by the agent's install container"
    return reference_problem(task)


def render_pod(
    task: Task, settings: Settings = DEFAULT_SETTINGS, attempt: int = 1
) -> dict[str, Any]:
    """The core/v1 Pod manifest for ``task``'s ``attempt`` (a dict ready to POST).

    Raises :class:`RenderError` for the Tasks :func:`spec_problem` describes.
    """
    if (problem := spec_problem(task, settings)) is not None:
        raise RenderError(problem)
    if executor_of(task, settings) == EXECUTOR_AGENT:
        from taskflow.render_agent import agent_pod

        return agent_pod(task, settings, attempt)
    spec = task.spec
    steps = spec.steps

    containers = [_container(s) for s in steps]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False}
    if len(containers) > 1:
        pod_spec["initContainers"] = containers[:-1]
    pod_spec["containers"] = containers[-1:]
    scripts = {s.name: s.script for s in steps if s.script is not None}
    return assemble(task, attempt, pod_spec, scripts)


def assemble(
    task: Task, attempt: int, pod_spec: dict[str, Any], scripts: dict[str, str]
) -> dict[str, Any]:
    """The pod around ``pod_spec``'s containers (both executors): metadata, the volumes
    (template, workspace, scripts; ``pod_spec``'s own ones after them), the deadline and
    the pod template's fields."""
    spec = task.spec
    tpl = spec.pod_template

    volumes: list[dict[str, Any]] = list(tpl.volumes) if tpl else []
    volumes.append({"name": WORKSPACE_VOLUME, "emptyDir": {}})
    annotations = {script_annotation(n): normalize_script(text) for n, text in scripts.items()}
    if scripts:
        items = [
            {
                "path": name,
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{script_annotation(name)}']",
                },
                "mode": SCRIPT_MODE,
            }
            for name in scripts
        ]
        volumes.append({"name": SCRIPTS_VOLUME, "downwardAPI": {"items": items}})
    volumes.extend(pod_spec.pop("volumes", []))

    meta: dict[str, Any] = {"name": pod_name(task.metadata.name, attempt)}
    if task.metadata.namespace:
        meta["namespace"] = task.metadata.namespace
    meta["labels"] = pod_labels(task, attempt)
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": task.metadata.name,
            "uid": task.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]

    pod_spec["volumes"] = volumes
    if spec.active_deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if tpl is not None:
        tpl_dict: dict[str, Any] = msgspec.to_builtins(tpl)
        tpl_dict.pop("volumes", None)
        pod_spec.update(tpl_dict)

    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
