"""Every write the operator makes, and nothing else (see the RBAC table in docs/design.md).

* ``POST pods`` (409 -> ``GET pods/<name>``: adopt it if labelled with our Task UID, else
  report it);
* ``PATCH tasks/<name>/status`` as a JSON merge patch, only when the status changed, with
  the cached resourceVersion as precondition (a stale cache gets 409 and a retry, never
  overwrites a newer status);
* ``PATCH pods/<name>`` lowering ``activeDeadlineSeconds`` to stop a pod (cancel, timeout);
* ``DELETE tasks/<name>`` (UID precondition, background propagation) after its TTL;
* ``POST events`` with a deterministic name (Task UID, reason and the event's key); 409
  means already recorded.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from taskflow.api.pod import Pod
from taskflow.api.task import API_VERSION, KIND
from taskflow.api.task_status import TaskStatus
from taskflow.engine.cache import (
    Cache,
    TaskEntry,
    Undecodable,
    decode_pod,
    decode_task,
    task_name,
    task_namespace,
    task_rv,
    task_uid,
)
from taskflow.engine.kube import ApiError, Kube
from taskflow.engine.resources import EVENTS, PODS, TASKS
from taskflow.labels import TASK_UID_LABEL
from taskflow.metrics import Metrics
from taskflow.reconcile import EventSpec
from taskflow.status import STOP_DEADLINE, format_time

log = logging.getLogger("taskflow.writer")

COMPONENT = "taskflow"
MERGE_PATCH = "application/merge-patch+json"

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class TaskRef:
    """Identity of the Task a write is about."""

    namespace: str
    name: str
    uid: str
    resource_version: str | None
    api_version: str = API_VERSION
    kind: str = KIND

    @classmethod
    def of(cls, entry: TaskEntry) -> TaskRef:
        api_version, kind = API_VERSION, KIND
        if isinstance(entry, Undecodable):
            api_version = str(entry.raw.get("apiVersion") or API_VERSION)
            kind = str(entry.raw.get("kind") or KIND)
        return cls(
            namespace=task_namespace(entry),
            name=task_name(entry),
            uid=task_uid(entry),
            resource_version=task_rv(entry),
            api_version=api_version,
            kind=kind,
        )


class Created(enum.Enum):
    CREATED = "created"
    ADOPTED = "adopted"  # it existed already, labelled with our Task UID
    CONFLICT = "conflict"  # a pod of that name exists and is not ours (``pod``)
    BUSY = "busy"  # a pod of that name that is not ours is going away (``pod``)
    REJECTED = "rejected"  # the API server refused the manifest (400/422)
    REFUSED = "refused"  # refused for now (403: quota, admission policy, permissions)


@dataclass(frozen=True)
class CreateResult:
    outcome: Created
    pod: Pod | None = None
    message: str = ""


def event_name(task: str, uid: str, reason: str, key: str) -> str:
    """``<task>.<16 hex chars>``: the same (Task, reason, key) always maps to one name."""
    digest = hashlib.sha256(f"{uid}\x00{reason}\x00{key}".encode()).hexdigest()[:16]
    return f"{task[: 253 - 17]}.{digest}"


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch turning ``old`` into ``new`` (nulls delete keys)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def status_dict(status: TaskStatus | dict[str, Any] | None) -> dict[str, Any]:
    if status is None:
        return {}
    if isinstance(status, dict):
        return status
    d = msgspec.to_builtins(status)
    assert isinstance(d, dict)
    return d


class Writer:
    def __init__(self, kube: Kube, cache: Cache, metrics: Metrics, identity: str) -> None:
        self.kube = kube
        self.cache = cache
        self.metrics = metrics
        self.identity = identity

    def _count(self, verb: str, resource: str, code: int) -> None:
        self.metrics.api_requests.labels(verb, resource, str(code)).inc()

    async def _send(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        try:
            data = await self.kube.request(method, path, body=body, content_type=content_type)
        except ApiError as exc:
            self._count(verb, resource, exc.status)
            raise
        self._count(verb, resource, 200)
        return data

    # -- pods -------------------------------------------------------------------------------

    async def create_pod(self, task: TaskRef, manifest: dict[str, Any]) -> CreateResult:
        meta = manifest.get("metadata") or {}
        namespace = str(meta.get("namespace") or task.namespace)
        name = str(meta.get("name", ""))
        try:
            data = await self._send(
                "create", "pods", "POST", PODS.collection(namespace), _encoder.encode(manifest)
            )
        except ApiError as exc:
            if exc.status == 409:
                return await self._adopt(task, namespace, name)
            if exc.status in (400, 422):
                return CreateResult(Created.REJECTED, message=exc.message or str(exc))
            if exc.status == 403:
                return CreateResult(Created.REFUSED, message=exc.message or str(exc))
            raise
        pod = decode_pod(data)
        self.cache.put_pod(pod)
        return CreateResult(Created.CREATED, pod)

    async def _adopt(self, task: TaskRef, namespace: str, name: str) -> CreateResult:
        data = await self._send("get", "pods", "GET", PODS.item(namespace, name))
        pod = decode_pod(data)
        if pod.metadata.labels.get(TASK_UID_LABEL) == task.uid:
            self.cache.put_pod(pod)
            return CreateResult(Created.ADOPTED, pod)
        # not ours: the pure core says what the Task does about it (reconcile.name_taken)
        return CreateResult(Created.BUSY if self._going_away(pod, task) else Created.CONFLICT, pod)

    def _going_away(self, pod: Pod, task: TaskRef) -> bool:
        """Whether ``pod`` will disappear by itself: it is being deleted, or it belongs to a
        Task that no longer exists (a delete + re-create of the same name), so the garbage
        collector removes it."""
        if pod.metadata.deletion_timestamp is not None:
            return True
        owners = [r for r in pod.metadata.owner_references if r.kind == KIND]
        return bool(owners) and all(
            r.uid != task.uid and self.cache.task(r.uid) is None for r in owners
        )

    async def stop_pod(self, task: TaskRef, name: str) -> None:
        """Lower the pod's activeDeadlineSeconds so that the kubelet stops it (the API server
        allows lowering a running pod's deadline, never raising it). A pod already gone or
        already finished needs nothing."""
        body = {"spec": {"activeDeadlineSeconds": STOP_DEADLINE}}
        try:
            await self._send(
                "patch",
                "pods",
                "PATCH",
                PODS.item(task.namespace, name),
                _encoder.encode(body),
                MERGE_PATCH,
            )
        except ApiError as exc:
            if exc.status not in (404, 422):  # 422: terminal pods refuse spec updates
                raise

    # -- status -----------------------------------------------------------------------------

    async def patch_status(
        self,
        task: TaskRef,
        old: TaskStatus | dict[str, Any] | None,
        new: TaskStatus,
    ) -> TaskEntry | None:
        """Merge-patch ``status`` to ``new``; returns the updated Task (None: no change, or
        the Task is gone)."""
        before, after = status_dict(old), status_dict(new)
        diff = merge_patch(before, after)
        if not diff:
            return None
        body: dict[str, Any] = {"status": diff}
        if task.resource_version:
            body["metadata"] = {"resourceVersion": task.resource_version}
        try:
            data = await self._send(
                "patch",
                "tasks/status",
                "PATCH",
                TASKS.item(task.namespace, task.name, "status"),
                _encoder.encode(body),
                MERGE_PATCH,
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        entry = decode_task(data)
        if task_uid(entry) != task.uid:  # a new Task of the same name: not ours to touch
            return None
        self.cache.put_task(entry)
        return entry

    async def delete_task(self, task: TaskRef) -> bool:
        """Delete the Task (only this incarnation: UID precondition); its pods follow through
        their owner references. False if it was gone already."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": task.uid},
        }
        try:
            await self._send(
                "delete",
                "tasks",
                "DELETE",
                TASKS.item(task.namespace, task.name),
                _encoder.encode(body),
            )
        except ApiError as exc:
            if exc.status in (404, 409):  # gone, or a new Task of the same name
                return False
            raise
        return True

    # -- events -----------------------------------------------------------------------------

    async def record_event(self, task: TaskRef, event: EventSpec, now: datetime) -> bool:
        """Create the Event; False if it was already recorded (409)."""
        ts = format_time(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(task.name, task.uid, event.reason, event.key or event.message),
                "namespace": task.namespace,
            },
            "involvedObject": {
                "apiVersion": task.api_version,
                "kind": task.kind,
                "name": task.name,
                "namespace": task.namespace,
                "uid": task.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity[:128],
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            await self._send(
                "create", "events", "POST", EVENTS.collection(task.namespace), _encoder.encode(body)
            )
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True
