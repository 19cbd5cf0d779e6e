"""In-memory view of the cluster fed by the watch streams: Tasks by UID, Pods by task UID.

The cache is the only thing a reconcile reads. Writes the operator makes (a created pod,
a patched status) are put in at once ("write-through") so the next reconcile does not act
on a state older than its own writes; a watch event carrying an *older* resourceVersion
than the cached object is ignored for the same reason.

Two races between write-through and the streams are closed here:

* a relist (after 410) hands over a snapshot taken at the LIST's resourceVersion; an object
  missing from it but cached with a *newer* resourceVersion was created (and written
  through) after the snapshot, so it is kept: the watch that follows starts at the
  snapshot's resourceVersion and replays whatever happens to it later (even its deletion);
* a write-through can land after the watch told us the object is deleted (the response of
  a PATCH sent before the DELETE); the cache remembers recent deletions (tombstones) and
  refuses such a write instead of keeping a ghost forever.

A finished Task never changes again, so only what is still read of it is kept (see
:func:`slim`): 10k finished Tasks with 50,000-character scripts hold 31 MiB of heap
instead of 563 MiB (``python -m benchmarks.tools.cache_memory``). Of a pod, what no decision reads
of a cached one is not kept either (see :func:`slim_pod`): its annotations carry the agent's
step scripts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from taskflow import api
from taskflow.api.meta import ObjectMeta
from taskflow.api.pod import Pod
from taskflow.api.task import Task
from taskflow.api.task_status import FINISHED
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


def provably_newer(new_rv: str | None, old_rv: str | None) -> bool:
    """Whether ``new_rv`` is *known* to be newer than ``old_rv``: both parse as integers
    (etcd revisions, what every real API server sends) and ``new_rv`` is greater.

    Used where guessing wrong keeps a stale object: keeping a cached object a relist did
    not return, or accepting a write-through of a deleted one. With opaque
    resourceVersions the answer is "not known", so the server's word (the LIST, the
    DELETED event) wins.
    """
    if not new_rv or not old_rv:
        return False
    try:
        return int(new_rv) > int(old_rv)
    except ValueError:
        return False


#: How many deletions a cache remembers per kind. A write-through races a deletion only
#: while its request is in flight (seconds), so the newest 10,000 are plenty (~1 MB).
TOMBSTONES = 10_000


class Tombstones:
    """Recently deleted UIDs, each with the resourceVersion at which it was known gone
    (the DELETED event's, or the LIST's that no longer had it); the oldest are forgotten
    first."""

    def __init__(self, limit: int = TOMBSTONES) -> None:
        self.limit = limit
        self._rvs: OrderedDict[str, str | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rvs)

    def add(self, uid: str, rv: str | None) -> None:
        self._rvs[uid] = rv
        self._rvs.move_to_end(uid)
        while len(self._rvs) > self.limit:
            self._rvs.popitem(last=False)

    def discard(self, uid: str) -> None:
        self._rvs.pop(uid, None)

    def buries(self, uid: str, rv: str | None) -> bool:
        """Whether an object ``uid`` at ``rv`` is one we know to be deleted: it was, and
        ``rv`` is not provably newer than the deletion."""
        if uid not in self._rvs:
            return False
        return not provably_newer(rv, self._rvs[uid])


#: kubectl's copy of the whole applied object (scripts included) in an annotation.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(entry: TaskEntry) -> TaskEntry:
    """What a *finished* Task still needs in the cache, and nothing more.

    ``reconcile.plan`` reads only its TTL from the spec; what is still read otherwise is its
    metadata (identity, resourceVersion, owner checks) and its status (gauges, resync; it
    names every step). The spec's steps (scripts of up to 60,000 characters, commands,
    env), its pod template and kubectl's last-applied copy of it go: ``spec.steps`` is left
    empty, the small scalar fields stay. Unfinished entries are returned unchanged.
    """
    if task_state(entry) not in FINISHED:
        return entry
    if isinstance(entry, Undecodable):
        kept: dict[str, Any] = {
            k: entry.raw[k] for k in ("apiVersion", "kind", "status") if k in entry.raw
        }
        raw_meta = dict(entry.metadata)
        notes = raw_meta.get("annotations")
        if isinstance(notes, dict) and LAST_APPLIED in notes:
            raw_meta["annotations"] = {k: v for k, v in notes.items() if k != LAST_APPLIED}
        kept["metadata"] = raw_meta
        return Undecodable(kept, entry.error)
    meta = entry.metadata
    if LAST_APPLIED in meta.annotations:
        annotations = {k: v for k, v in meta.annotations.items() if k != LAST_APPLIED}
        meta = msgspec.structs.replace(meta, annotations=annotations)
    spec = msgspec.structs.replace(entry.spec, steps=[], pod_template=None)
    return msgspec.structs.replace(entry, metadata=meta, spec=spec)


#: Strings the pool holds at most before it starts over (a few hundred KB): bounded whatever
#: the values, and what repeats (namespaces, images, step names, states) is back at once.
POOL_SIZE = 4096
#: ObjectMeta fields unique per object: pooling them would only churn the pool.
_UNIQUE = frozenset({"name", "generate_name", "uid", "resource_version"})


class StringPool:
    """One copy of each equal string in what the cache holds: every decoded object has its
    own copy of its namespace, apiVersion, kind, images, step names, states and messages,
    ~1.5 KB per Task and pod that 10k of them repeat (``benchmarks/scale.py``). Not
    ``sys.intern``: interned strings are immortal on some Pythons, and resourceVersions
    would never be freed."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._strings: dict[str, str] = {}

    def share(self, obj: msgspec.Struct) -> None:
        """Replace, in place, each string in ``obj`` (structs, lists and dict values within)
        by the pool's equal one; the values do not change, only which copy holds them."""
        unique = _UNIQUE if isinstance(obj, ObjectMeta) else frozenset()
        for name in obj.__struct_fields__:
            value = getattr(obj, name)
            if type(value) is str:
                if name not in unique:
                    setattr(obj, name, self._one(value))
            elif isinstance(value, msgspec.Struct):
                self.share(value)
            elif type(value) is list:
                for i, item in enumerate(value):
                    if type(item) is str:
                        value[i] = self._one(item)
                    elif isinstance(item, msgspec.Struct):
                        self.share(item)
            elif type(value) is dict:
                for key, item in value.items():
                    if type(item) is str:
                        value[key] = self._one(item)

    def _one(self, value: str) -> str:
        got = self._strings.setdefault(value, value)
        if len(self._strings) > self.size:
            self._strings.clear()  # start over: the objects keep their strings
        return got


def slim_pod(pod: Pod) -> Pod:
    """What the cache keeps of a pod: all but its annotations (where the agent executor's
    step scripts ride, up to 60,000 characters each), owner references and finalizers.
    Decisions read a cached pod's labels, spec and status; the writer checks owners on a pod
    it fetches itself, never on a cached one. About 0.4 KB of 2.7 KB for a bare one-step
    pod (``benchmarks/scale.py``), and each script's size for agent pods."""
    meta = pod.metadata
    if not (meta.annotations or meta.owner_references or meta.finalizers):
        return pod
    meta = msgspec.structs.replace(meta, annotations={}, owner_references=[], finalizers=[])
    return msgspec.structs.replace(pod, metadata=meta)


class Cache:
    """Tasks by UID and Pods by UID (indexed by their Task's UID).

    Writers call :meth:`put_task` / :meth:`put_pod` (write-through: refused for an object
    known to be deleted); the watch handlers pass ``from_watch=True`` (the stream is the
    server's ordered history, so it is always believed).
    """

    def __init__(
        self, on_change: Callable[[str], None] | None = None, tombstones: int = TOMBSTONES
    ) -> None:
        #: Called with a Task UID whenever that Task or its pod changed.
        self.on_change: Callable[[str], None] = on_change or (lambda uid: None)
        self.tasks: dict[str, TaskEntry] = {}
        self.pods: dict[str, Pod] = {}  # pod uid -> pod
        self._pods_by_task: dict[str, set[str]] = {}  # task uid -> pod uids
        self.deleted_tasks = Tombstones(tombstones)
        self.deleted_pods = Tombstones(tombstones)
        self.strings = StringPool()

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

    def put_task(self, entry: TaskEntry, *, from_watch: bool = False) -> bool:
        """Store ``entry`` unless the cached copy is as new; True when it was stored.

        A write-through (``from_watch=False``) of a Task known to be deleted is refused.
        """
        uid = task_uid(entry)
        if not uid:
            return False
        rv = task_rv(entry)
        if from_watch:
            self.deleted_tasks.discard(uid)
        elif self.deleted_tasks.buries(uid, rv):
            log.debug("not caching a write to Task %s (rv %s): it was deleted", uid, rv)
            return False
        old = self.tasks.get(uid)
        if old is not None and not is_newer(rv, task_rv(old)):
            return False
        entry = slim(entry)
        if not isinstance(entry, Undecodable):
            self.strings.share(entry)
        self.tasks[uid] = entry
        self.on_change(uid)
        return True

    def delete_task(self, uid: str, rv: str | None = None) -> None:
        """The Task is gone (as of ``rv``, when known): drop it and remember that."""
        self.deleted_tasks.add(uid, rv)
        if self.tasks.pop(uid, None) is not None:
            self.on_change(uid)

    def replace_tasks(
        self, namespace: str | None, entries: list[TaskEntry], list_rv: str | None
    ) -> None:
        """Make ``entries`` (a LIST at ``list_rv``) the set in scope; cached Tasks newer
        than the LIST are kept (see the module docstring)."""
        seen = set()
        for entry in entries:
            seen.add(task_uid(entry))
            self.put_task(entry, from_watch=True)
        for uid, entry in list(self.tasks.items()):
            if uid in seen or (namespace is not None and task_namespace(entry) != namespace):
                continue
            if provably_newer(task_rv(entry), list_rv):
                log.debug("relist at rv %s: kept Task %s (rv %s)", list_rv, uid, task_rv(entry))
                continue
            self.delete_task(uid, list_rv)

    # -- Pods -------------------------------------------------------------------------------

    def put_pod(self, pod: Pod, *, from_watch: bool = False) -> bool:
        """Store ``pod`` unless the cached copy is as new; True when it was stored.

        A write-through (``from_watch=False``) of a pod known to be deleted is refused.
        """
        uid = pod.metadata.uid
        if not uid:
            return False
        rv = pod.metadata.resource_version
        if from_watch:
            self.deleted_pods.discard(uid)
        elif self.deleted_pods.buries(uid, rv):
            log.debug("not caching a write to pod %s (rv %s): it was deleted", uid, rv)
            return False
        old = self.pods.get(uid)
        if old is not None and not is_newer(rv, old.metadata.resource_version):
            return False
        old_owner = _owner(old) if old is not None else None
        owner = _owner(pod)
        pod = slim_pod(pod)
        self.strings.share(pod)
        self.pods[uid] = pod
        if old_owner is not None and old_owner != owner:
            self._unindex(old_owner, uid)
            self.on_change(old_owner)
        if owner is not None:
            self._pods_by_task.setdefault(owner, set()).add(uid)
            self.on_change(owner)
        return True

    def delete_pod(self, uid: str, rv: str | None = None) -> None:
        """The pod is gone (as of ``rv``, when known): drop it and remember that."""
        self.deleted_pods.add(uid, rv)
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        owner = _owner(pod)
        if owner is not None:
            self._unindex(owner, uid)
            self.on_change(owner)

    def replace_pods(
        self,
        namespace: str | None,
        pods: list[Pod],
        list_rv: str | None,
        keep: set[str] | None = None,
    ) -> None:
        """Make ``pods`` (a LIST at ``list_rv``) the set in scope; ``keep``: pod UIDs not to
        drop (present on the server but undecodable). Cached pods newer than the LIST are
        kept (see the module docstring)."""
        seen = set(keep or ())
        for pod in pods:
            seen.add(pod.metadata.uid)
            self.put_pod(pod, from_watch=True)
        for uid, pod in list(self.pods.items()):
            if uid in seen or (namespace is not None and pod.metadata.namespace != namespace):
                continue
            rv = pod.metadata.resource_version
            if provably_newer(rv, list_rv):
                log.debug("relist at rv %s: kept pod %s (rv %s)", list_rv, uid, rv)
                continue
            self.delete_pod(uid, list_rv)

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

    def replace(
        self, namespace: str | None, items: list[msgspec.Raw], resource_version: str
    ) -> None:
        entries = [decode_task(raw) for raw in items]
        self.cache.replace_tasks(namespace, entries, resource_version)

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        entry = decode_task(raw)
        if event_type == "DELETED":
            self.cache.delete_task(task_uid(entry), task_rv(entry))
        else:
            self.cache.put_task(entry, from_watch=True)


class PodHandler:
    """Watch handler feeding (label-selected) Pods into the cache."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def replace(
        self, namespace: str | None, items: list[msgspec.Raw], resource_version: str
    ) -> None:
        pods = []
        keep = set()
        for raw in items:
            try:
                pods.append(decode_pod(raw))
            except Exception as exc:
                log.error("cannot decode a pod (kept the cached copy if any): %s", exc)
                keep.add(_uid_decoder.decode(raw).metadata.uid)
        self.cache.replace_pods(namespace, pods, resource_version, keep)

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        try:
            pod = decode_pod(raw)
        except Exception as exc:
            log.error("cannot decode a pod event (%s): %s", event_type, exc)
            return
        if event_type == "DELETED":
            self.cache.delete_pod(pod.metadata.uid, pod.metadata.resource_version)
        else:
            self.cache.put_pod(pod, from_watch=True)
