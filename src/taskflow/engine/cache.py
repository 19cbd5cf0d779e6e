"""In-memory view of the cluster fed by the watch streams: Tasks by UID, Pods by task UID.

The cache is the only thing a reconcile reads. Writes the operator makes (a created pod,
a patched status) are put in at once ("write-through") so the next reconcile does not act
on a state older than its own writes; a watch event carrying an *older* resourceVersion
than the cached object is ignored for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from taskflow import api
from taskflow.api.pod import Pod
from taskflow.api.task import FINISHED, Task
from taskflow.labels import TASK_UID_LABEL

log = logging.getLogger("taskflow.cache")

_any_decoder = msgspec.json.Decoder()


class _UidMeta(msgspec.Struct):
    uid: str = ""


class _HasUid(msgspec.Struct):
    metadata: _UidMeta = msgspec.field(default_factory=_UidMeta)


_uid_decoder = msgspec.json.Decoder(_HasUid)


@dataclass
class Undecodable:
    """A Task object that does not fit the ``Task`` model; kept raw for the failure path."""

    raw: dict[str, Any]
    error: str
    metadata: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        meta = self.raw.get("metadata")
        self.metadata = meta if isinstance(meta, dict) else {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def resource_version(self) -> str | None:
        rv = self.metadata.get("resourceVersion")
        return None if rv is None else str(rv)

    @property
    def raw_status(self) -> dict[str, Any] | None:
        st = self.raw.get("status")
        return st if isinstance(st, dict) else None


TaskEntry = Task | Undecodable


_task_decoder = msgspec.json.Decoder(Task)
_pod_decoder = msgspec.json.Decoder(Pod)


def decode_task(raw: bytes | msgspec.Raw) -> TaskEntry:
    """Decode a Task; anything the model rejects becomes :class:`Undecodable`.

    Fast path: straight from JSON bytes into the struct (same result as
    ``api.decode_task(dict)``, which is ``msgspec.convert``); on failure the bytes are
    decoded again into a dict so the raw object and ``api.decode_task``'s message are kept.
    """
    try:
        return _task_decoder.decode(raw)
    except msgspec.ValidationError:
        pass
    doc = _any_decoder.decode(raw)
    if not isinstance(doc, dict):
        raise ValueError("a Task must be a JSON object")
    try:
        return api.decode_task(doc)
    except Exception as exc:  # any model/validation error: keep it raw, fail the Task
        return Undecodable(doc, str(exc))


def decode_pod(raw: bytes | msgspec.Raw) -> Pod:
    try:
        return _pod_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise api.DecodeError(str(exc)) from None


def task_uid(entry: TaskEntry) -> str:
    return entry.uid if isinstance(entry, Undecodable) else entry.metadata.uid


def task_namespace(entry: TaskEntry) -> str:
    if isinstance(entry, Undecodable):
        return entry.namespace
    return entry.metadata.namespace or ""


def task_name(entry: TaskEntry) -> str:
    return entry.name if isinstance(entry, Undecodable) else entry.metadata.name


def task_rv(entry: TaskEntry) -> str | None:
    return (
        entry.resource_version
        if isinstance(entry, Undecodable)
        else entry.metadata.resource_version
    )


def task_state(entry: TaskEntry) -> str:
    """The STATUS column word of a cached Task (``Pending`` while empty)."""
    if isinstance(entry, Undecodable):
        st = entry.raw_status
        word = st.get("status") if st else None
        return str(word) if word else "Pending"
    status = entry.status
    word = getattr(status, "status", None) if status is not None else None
    return str(word) if word else "Pending"


def is_newer(new_rv: str | None, old_rv: str | None) -> bool:
    """Whether ``new_rv`` is newer than ``old_rv`` (so the cached object must be replaced).

    resourceVersions are opaque by contract but etcd revisions (integers) in practice;
    when both parse as integers we compare them, otherwise any different one wins.
    An equal resourceVersion means the same object: nothing to do.
    """
    if not new_rv or not old_rv:
        return True
    if new_rv == old_rv:
        return False
    try:
        return int(new_rv) > int(old_rv)
    except ValueError:
        return True


class Cache:
    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        #: Called with a Task UID whenever that Task or its pod changed.
        self.on_change: Callable[[str], None] = on_change or (lambda uid: None)
        self.tasks: dict[str, TaskEntry] = {}
        self.pods: dict[str, Pod] = {}  # pod uid -> pod
        self._pods_by_task: dict[str, set[str]] = {}  # task uid -> pod uids

    # -- reads ------------------------------------------------------------------------------

    def task(self, uid: str) -> TaskEntry | None:
        return self.tasks.get(uid)

    def pod_for(self, uid: str, pod_name: str | None = None) -> Pod | None:
        """The pod labelled with Task UID ``uid`` (preferring the one named ``pod_name``)."""
        pod_uids = self._pods_by_task.get(uid)
        if not pod_uids:
            return None
        pods = [self.pods[p] for p in sorted(pod_uids)]
        if pod_name is not None:
            for pod in pods:
                if pod.metadata.name == pod_name:
                    return pod
        return pods[0]

    def task_uids(self) -> Iterator[str]:
        return iter(list(self.tasks))

    def unfinished_task_uids(self) -> list[str]:
        """Tasks whose status may still change (not Successful or Failure)."""
        return [uid for uid, e in self.tasks.items() if task_state(e) not in FINISHED]

    def count_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.tasks.values():
            state = task_state(entry)
            counts[state] = counts.get(state, 0) + 1
        return counts

    # -- Tasks ------------------------------------------------------------------------------

    def put_task(self, entry: TaskEntry, *, notify: bool = True) -> bool:
        uid = task_uid(entry)
        if not uid:
            return False
        old = self.tasks.get(uid)
        if old is not None and not is_newer(task_rv(entry), task_rv(old)):
            return False
        self.tasks[uid] = entry
        if notify:
            self.on_change(uid)
        return True

    def delete_task(self, uid: str) -> None:
        if self.tasks.pop(uid, None) is not None:
            self.on_change(uid)

    def replace_tasks(self, namespace: str | None, entries: list[TaskEntry]) -> None:
        seen = set()
        for entry in entries:
            uid = task_uid(entry)
            seen.add(uid)
            self.put_task(entry)
        for uid, entry in list(self.tasks.items()):
            if uid not in seen and (namespace is None or task_namespace(entry) == namespace):
                self.delete_task(uid)

    # -- Pods -------------------------------------------------------------------------------

    def put_pod(self, pod: Pod, *, notify: bool = True) -> bool:
        uid = pod.metadata.uid
        if not uid:
            return False
        old = self.pods.get(uid)
        if old is not None and not is_newer(
            pod.metadata.resource_version, old.metadata.resource_version
        ):
            return False
        old_owner = _owner(old) if old is not None else None
        owner = _owner(pod)
        self.pods[uid] = pod
        if old_owner is not None and old_owner != owner:
            self._unindex(old_owner, uid)
            if notify:
                self.on_change(old_owner)
        if owner is not None:
            self._pods_by_task.setdefault(owner, set()).add(uid)
            if notify:
                self.on_change(owner)
        return True

    def delete_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        owner = _owner(pod)
        if owner is not None:
            self._unindex(owner, uid)
            self.on_change(owner)

    def replace_pods(
        self, namespace: str | None, pods: list[Pod], keep: set[str] | None = None
    ) -> None:
        """Make ``pods`` the complete set in scope; ``keep``: pod UIDs not to drop
        (present on the server but undecodable)."""
        seen = set(keep or ())
        for pod in pods:
            seen.add(pod.metadata.uid)
            self.put_pod(pod)
        for uid, pod in list(self.pods.items()):
            if uid not in seen and (namespace is None or pod.metadata.namespace == namespace):
                self.delete_pod(uid)

    def _unindex(self, owner: str, pod_uid: str) -> None:
        uids = self._pods_by_task.get(owner)
        if uids is not None:
            uids.discard(pod_uid)
            if not uids:
                del self._pods_by_task[owner]


def _owner(pod: Pod) -> str | None:
    return pod.metadata.labels.get(TASK_UID_LABEL) or None


class TaskHandler:
    """Watch handler feeding Tasks into the cache."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def replace(self, namespace: str | None, items: list[msgspec.Raw]) -> None:
        self.cache.replace_tasks(namespace, [decode_task(raw) for raw in items])

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        entry = decode_task(raw)
        if event_type == "DELETED":
            self.cache.delete_task(task_uid(entry))
        else:
            self.cache.put_task(entry)


class PodHandler:
    """Watch handler feeding (label-selected) Pods into the cache."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def replace(self, namespace: str | None, items: list[msgspec.Raw]) -> None:
        pods = []
        keep = set()
        for raw in items:
            try:
                pods.append(decode_pod(raw))
            except Exception as exc:
                log.error("cannot decode a pod (kept the cached copy if any): %s", exc)
                keep.add(_uid_decoder.decode(raw).metadata.uid)
        self.cache.replace_pods(namespace, pods, keep)

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        try:
            pod = decode_pod(raw)
        except Exception as exc:
            log.error("cannot decode a pod event (%s): %s", event_type, exc)
            return
        if event_type == "DELETED":
            self.cache.delete_pod(pod.metadata.uid)
        else:
            self.cache.put_pod(pod)
