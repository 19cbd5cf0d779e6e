"""Level-triggered sync of one Task: read the cache, ask the pure core (`reconcile.plan`), write."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio

from taskflow import reconcile
from taskflow.api.task import Task
from taskflow.api.task_status import FINISHED, TaskStatus
from taskflow.engine.cache import Cache, TaskEntry, Undecodable, task_name, task_namespace
from taskflow.engine.images import ImageResolver
from taskflow.engine.kube import ApiError
from taskflow.engine.queue import QueueShutDown, WorkQueue
from taskflow.engine.registry import RegistryClient
from taskflow.engine.writer import Created, TaskRef, Writer, status_dict
from taskflow.metrics import CONTROLLER, Metrics
from taskflow.naming import pod_name
from taskflow.reconcile import EventSpec, Plan
from taskflow.settings import Settings
from taskflow.status import current_attempt, parse_time

log = logging.getLogger("taskflow.reconcile")

#: Seconds before a sync skipped for lack of leadership is tried again.
NOT_LEADING_RETRY = 1.0


class SyncResult(enum.Enum):
    """What a sync asks of the queue; its value is the ``result`` label of
    ``controller_runtime_reconcile_total`` (not status/_outcome.py's ``Outcome``, which is
    how a Task ended)."""

    SUCCESS = "success"
    REQUEUE = "requeue"
    REQUEUE_AFTER = "requeue_after"
    #: the sync could not do its job (its state is written); retry with backoff
    ERROR = "error"


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """Adds the Task's ``namespace``, ``name`` and ``uid`` to every record.

    They travel as one record attribute ``task`` (a dict; ``name`` itself is reserved by
    :class:`logging.LogRecord`) that :mod:`taskflow.logs` flattens into the output.
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra["task"] = self.extra
        kwargs["extra"] = extra
        return msg, kwargs


def task_logger(namespace: str, name: str, uid: str) -> TaskLogger:
    return TaskLogger(log, {"namespace": namespace, "name": name, "uid": uid})


def _parse_time(value: str | None) -> datetime | None:
    """A status timestamp, or None when absent or unreadable (a status another writer set)."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


class Syncer:
    def __init__(
        self,
        cache: Cache,
        writer: Writer,
        settings: Settings,
        metrics: Metrics,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        leading: Callable[[], bool] = lambda: True,
        images: ImageResolver | None = None,
    ) -> None:
        self.cache = cache
        self.writer = writer
        self.settings = settings
        self.metrics = metrics
        self.now = now
        #: False once the lease may have passed to another replica: write nothing then
        self.leading = leading
        #: reads agent steps' ENTRYPOINT/CMD when a plan asks (its owner closes the client)
        self.images = images or ImageResolver(writer.kube, RegistryClient())

    def logger(self, uid: str) -> TaskLogger:
        entry = self.cache.task(uid)
        if entry is None:
            return task_logger("", "", uid)
        return task_logger(task_namespace(entry), task_name(entry), uid)

    async def sync(self, uid: str) -> tuple[SyncResult, float | None]:
        if not self.leading():  # the operator stops itself at once; never race a new leader
            return SyncResult.REQUEUE_AFTER, NOT_LEADING_RETRY
        entry = self.cache.task(uid)
        if entry is None:  # deleted; its pod goes with it (owner reference)
            return SyncResult.SUCCESS, None
        tlog = task_logger(task_namespace(entry), task_name(entry), uid)
        ref = TaskRef.of(entry)
        now = self.now()
        old_status: TaskStatus | dict[str, Any] | None
        refused = False
        if isinstance(entry, Undecodable):
            old_status = entry.raw_status
            plan = reconcile.undecodable(entry.raw_status, entry.error, now=now)
        else:
            old_status = entry.status
            plan = await self._plan(uid, entry, now, tlog)
            if plan.delete_task:
                if await self.writer.delete_task(ref):
                    tlog.info("deleted: finished and past its ttlSecondsAfterFinished")
                return SyncResult.SUCCESS, None
            if plan.create_pod is not None:
                manifest = plan.create_pod
                after, refused = await self._create_pod(entry, ref, manifest, plan, now, tlog)
                if after is None:  # the cached pod has queued this Task again (see Plan)
                    return SyncResult.SUCCESS, None
                plan = after
        await self.apply(entry, ref, old_status, plan, tlog, now)
        if refused:  # its status says so; the per-key backoff paces the next try
            return SyncResult.ERROR, None
        if plan.requeue_after is not None:
            return SyncResult.REQUEUE_AFTER, plan.requeue_after
        return SyncResult.SUCCESS, None

    async def _plan(self, uid: str, task: Task, now: datetime, tlog: TaskLogger) -> Plan:
        """The pure core's plan for ``task`` and its current attempt's cached pod, with the
        images' ENTRYPOINT/CMD looked up first when a due pod needs them."""
        name = pod_name(task.metadata.name, current_attempt(task.status))
        pod = self.cache.pod_for(uid, name)
        if pod is not None and pod.metadata.name != name:
            pod = None  # an earlier attempt's pod: the current one is not there yet
        plan = reconcile.plan(task, pod, now=now, settings=self.settings)
        if not plan.lookup_images:
            return plan
        found = await self.images.resolve(task, plan.lookup_images)
        for answer in found.values():
            if answer.error is not None:
                tlog.warning("image lookup failed: %s", answer.error)
        return reconcile.plan(task, pod, now=now, settings=self.settings, images=found)

    async def _create_pod(
        self,
        task: Task,
        ref: TaskRef,
        manifest: dict[str, Any],
        plan: Plan,
        now: datetime,
        tlog: TaskLogger,
    ) -> tuple[Plan | None, bool]:
        """POST ``manifest``; the plan to apply after the API server's answer (None: nothing
        until the sync the created pod's arrival in the cache wakes), and whether the create
        was refused for now (to be retried with backoff)."""
        result = await self.writer.create_pod(ref, manifest)
        if result.outcome is Created.CREATED:
            name = _pod_name(manifest)
            tlog.info("created pod %s", name)
            cached = self.cache.pod_for(ref.uid, name)
            if plan.status_waits_for_pod and cached is not None and cached.metadata.name == name:
                return None, False
            return plan, False
        if result.outcome is Created.ADOPTED:
            # ours already (a create whose status write failed, or a crash between them):
            # apply the plan as if the create had worked, so that the status names this
            # pod's attempt; planning again from the old status would POST the same pod
            # again, forever (the cached pod wakes the Task anyway)
            tlog.info("adopted existing pod %s", _pod_name(manifest))
            return plan, False
        if result.outcome in (Created.BUSY, Created.CONFLICT) and result.pod is not None:
            tlog.info(
                "pod name %s is held by a pod that is not ours (%s)",
                _pod_name(manifest),
                result.outcome.value,
            )
            going_away = result.outcome is Created.BUSY
            held = reconcile.name_taken(
                task, result.pod, going_away=going_away, now=now, settings=self.settings
            )
            return held, False
        if result.outcome is Created.REFUSED:
            tlog.warning("pod refused for now: %s", result.message)
            return reconcile.create_refused(task, result.message, now=now), True
        tlog.warning("pod %s: %s", result.outcome.value, result.message)
        return reconcile.rejected(task, result.message, now=now), False

    async def apply(
        self,
        entry: TaskEntry,
        ref: TaskRef,
        old_status: TaskStatus | dict[str, Any] | None,
        plan: Plan,
        tlog: TaskLogger,
        now: datetime,
    ) -> None:
        if plan.stop_pod is not None:
            await self.writer.stop_pod(ref, plan.stop_pod)
            tlog.info("asked pod %s to stop", plan.stop_pod)
        # Events first, then the status: a status is written only once every event of its
        # transition is recorded. A failed event POST raises (the sync is retried with
        # backoff) and leaves the old status in place, so the retry plans the same events
        # again; their deterministic names turn the ones already recorded into 409s.
        await self._record_all(ref, plan.events, now, tlog)
        if plan.status is None:
            return
        updated = await self.writer.patch_status(ref, old_status, plan.status)
        if updated is None:
            return
        new_word = plan.status.status or "Pending"
        old_word = status_dict(old_status).get("status") or "Pending"
        if new_word != old_word:
            tlog.info("status %s -> %s", old_word, new_word)
        if new_word in FINISHED and old_word not in FINISHED:
            self._observe_duration(entry, plan.status)

    async def _record_all(
        self, ref: TaskRef, events: tuple[EventSpec, ...], now: datetime, tlog: TaskLogger
    ) -> None:
        """Record ``events`` concurrently; raise the first failure once all have been tried."""
        failures: list[Exception] = []

        async def record(event: EventSpec) -> None:
            try:
                if await self.writer.record_event(ref, event, now):
                    tlog.info("event %s %s: %s", event.type, event.reason, event.message)
            except Exception as exc:
                tlog.warning("could not record event %s: %s", event.reason, exc)
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for event in events:
                tg.start_soon(record, event)
        if failures:
            raise failures[0]

    def _observe_duration(self, entry: TaskEntry, status: TaskStatus) -> None:
        end = _parse_time(status.completion_time)
        start = _parse_time(status.start_time)
        if start is None and not isinstance(entry, Undecodable):
            start = entry.metadata.creation_timestamp
        if start is None or end is None:
            return
        self.metrics.task_duration.labels(status.status).observe(
            max(0.0, (end - start).total_seconds())
        )


def _pod_name(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return str(meta.get("name", "?"))


async def run_worker(
    queue: WorkQueue[str], syncer: Syncer, metrics: Metrics, number: int = 0
) -> None:
    """Take keys from the queue until it shuts down; one sync at a time per key."""
    total = metrics.reconcile_total
    errors = metrics.reconcile_errors.labels(CONTROLLER)
    timing = metrics.reconcile_time.labels(CONTROLLER)
    while True:
        try:
            uid = await queue.get()
        except QueueShutDown:
            return
        t0 = time.perf_counter()
        failure: Exception | None = None
        try:
            try:
                outcome, delay = await syncer.sync(uid)
            except Exception as exc:
                failure, outcome, delay = exc, SyncResult.ERROR, None
            total.labels(CONTROLLER, outcome.value).inc()
            if outcome is SyncResult.ERROR:
                # the failure count is kept, so the backoff grows until a success
                errors.inc()
                backoff = queue.add_rate_limited(uid)
                _log_retry(syncer.logger(uid), failure, queue.num_requeues(uid), backoff)
            else:
                queue.forget(uid)
                if outcome is SyncResult.REQUEUE:
                    queue.add(uid)
                elif outcome is SyncResult.REQUEUE_AFTER and delay is not None:
                    queue.add_after(uid, delay)
        finally:
            timing.observe(time.perf_counter() - t0)
            queue.done(uid)


def _log_retry(tlog: TaskLogger, failure: Exception | None, n: int, backoff: float) -> None:
    if failure is None:  # the sync wrote why (e.g. FailedCreate) and asked for a retry
        tlog.info("retry %d in %.3fs", n, backoff)
    elif isinstance(failure, ApiError) and failure.status == 409:
        tlog.info("conflict (stale cache), retrying in %.3fs: %s", backoff, failure)
    else:
        tlog.warning(
            "reconcile failed (retry %d in %.3fs): %s",
            n,
            backoff,
            failure,
            exc_info=None if isinstance(failure, ApiError) else failure,
        )
