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
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from taskflow.api.task import (
    API_VERSION,
    KIND,
    SCRIPTS_DIR,
    SCRIPTS_VOLUME,
    WORKSPACE_DIR,
    WORKSPACE_VOLUME,
    Step,
    Task,
)
from taskflow.api.validate import spec_problem
from taskflow.labels import (
    ATTEMPT_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TASK_NAME_LABEL,
    TASK_UID_LABEL,
    script_annotation,
)
from taskflow.naming import label_value, pod_name
from taskflow.settings import DEFAULT_SETTINGS, Settings

DEFAULT_SHEBANG: Final = "#!/bin/sh\n"
SCRIPT_MODE: Final = 0o755
DEFAULT_TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"


class RenderError(ValueError):
    """The Task cannot be turned into a pod (only for Tasks the CRD schema would reject)."""


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
    c.pop("script", None)
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


def render_pod(
    task: Task, settings: Settings = DEFAULT_SETTINGS, attempt: int = 1
) -> dict[str, Any]:
    """The core/v1 Pod manifest for ``task``'s ``attempt`` (a dict ready to POST).

    Raises :class:`RenderError` for the Tasks :func:`spec_problem` describes.
    """
    del settings  # nothing in the pod depends on the settings (yet)
    if (problem := spec_problem(task)) is not None:
        raise RenderError(problem)
    spec = task.spec
    steps = spec.steps

    containers = [_container(s) for s in steps]
    tpl = spec.pod_template

    volumes: list[dict[str, Any]] = list(tpl.volumes) if tpl else []
    volumes.append({"name": WORKSPACE_VOLUME, "emptyDir": {}})
    scripts = [s for s in steps if s.script is not None]
    annotations = {script_annotation(s.name): normalize_script(s.script or "") for s in scripts}
    if scripts:
        items = [
            {
                "path": s.name,
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{script_annotation(s.name)}']",
                },
                "mode": SCRIPT_MODE,
            }
            for s in scripts
        ]
        volumes.append({"name": SCRIPTS_VOLUME, "downwardAPI": {"items": items}})

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

    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False}
    if len(containers) > 1:
        pod_spec["initContainers"] = containers[:-1]
    pod_spec["containers"] = containers[-1:]
    pod_spec["volumes"] = volumes
    if spec.active_deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if tpl is not None:
        tpl_dict: dict[str, Any] = msgspec.to_builtins(tpl)
        tpl_dict.pop("volumes", None)
        pod_spec.update(tpl_dict)

    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
