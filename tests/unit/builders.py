"""Small builders for Tasks and kubelet-shaped Pods (wire-format dicts, decoded like the
engine decodes them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from taskflow.api import Pod, Task, decode_pod, decode_task
from taskflow.naming import pod_name
from taskflow.settings import Settings

T0 = datetime(2024, 1, 6, 22, 19, 24, tzinfo=UTC)
#: the tables of the other behaviours run without the default Task timeout (test_lifecycle has it)
SETTINGS = Settings(
    image_pull_timeout=300, config_error_timeout=120, default_timeout=0, default_executor="kubelet"
)
ABC = ("a", "b", "c")


def ts(seconds: float) -> str:
    """RFC 3339 of T0 + seconds."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(name: str, image: str = "busybox:1.36", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def task_dict(
    *steps: dict[str, Any],
    name: str = "demo",
    uid: str = "0b5d7f4e-0000-4000-8000-000000000001",
    namespace: str = "default",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "generation": generation,
            "creationTimestamp": ts(-10),
        },
        "spec": {"steps": list(steps), **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def task(*steps: dict[str, Any], **kw: Any) -> Task:
    return decode_task(task_dict(*steps, **kw))


def steps_task(*names: str, **kw: Any) -> Task:
    return task(*(step(n) for n in names), **kw)


# --- container statuses ----------------------------------------------------------------------


def waiting(name: str, reason: str | None = "ContainerCreating", message: str | None = None) -> Any:
    w: dict[str, Any] = {}
    if reason is not None:
        w["reason"] = reason
    if message is not None:
        w["message"] = message
    return {"name": name, "ready": False, "restartCount": 0, "state": {"waiting": w}}


def running(name: str, started: float) -> Any:
    return {
        "name": name,
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": ts(started)}},
    }


def terminated(
    name: str,
    code: int,
    started: float,
    finished: float,
    reason: str | None = None,
    message: str | None = None,
    started_at: str | None = None,
) -> Any:
    t: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at or ts(started),
        "finishedAt": ts(finished),
        "containerID": f"containerd://{name}",
    }
    if message is not None:
        t["message"] = message
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": t}}


def pod_dict(
    t: Task,
    init: list[Any] | None = None,
    main: list[Any] | None = None,
    *,
    phase: str = "Pending",
    start: float | None = 0,
    reason: str | None = None,
    message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    node: str | None = "node-1",
    attempt: int = 1,
    deadline: int | None = None,
) -> dict[str, Any]:
    names = [s.name for s in t.spec.steps]
    meta: dict[str, Any] = {
        "name": pod_name(t.metadata.name, attempt),
        "namespace": t.metadata.namespace,
        "uid": "pod-uid",
        "creationTimestamp": ts(-1),
        "labels": {"api.practice.com/task-uid": t.metadata.uid},
    }
    if deleting:
        meta["deletionTimestamp"] = ts(1000)
    status: dict[str, Any] = {"phase": phase}
    if start is not None:
        status["startTime"] = ts(start)
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    if conditions is not None:
        status["conditions"] = conditions
    if init is not None:
        status["initContainerStatuses"] = init
    if main is not None:
        status["containerStatuses"] = main
    spec: dict[str, Any] = {
        "initContainers": [{"name": n, "image": "x"} for n in names[:-1]],
        "containers": [{"name": names[-1], "image": "x"}],
    }
    if node is not None:
        spec["nodeName"] = node
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def pod(t: Task, init: list[Any] | None = None, main: list[Any] | None = None, **kw: Any) -> Pod:
    return decode_pod(pod_dict(t, init, main, **kw))
