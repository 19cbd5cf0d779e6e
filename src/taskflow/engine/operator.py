"""Wires the engine together in one anyio task group.

::

    Task reflector(s) ─┐                                   ┌─ worker 1 ─┐
                       ├─> Cache ─(task UID)─> WorkQueue ──┼─ ...       ├─> Writer ─> API
    Pod reflector(s)  ─┘                                   └─ worker N ─┘
    side server (/healthz /readyz /metrics)    leader elector (optional)

Nothing is reconciled before every initial LIST is in the cache (a Task whose pod has not
been listed yet would look like ``PodDeleted``) and, with leader election, before this
replica leads. Standbys keep their caches warm and serve health, but do not reconcile.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc
import msgspec

from taskflow.engine.cache import Cache, PodHandler, TaskHandler
from taskflow.engine.images import ImageResolver
from taskflow.engine.kube import Kube
from taskflow.engine.leader import LeaderElector, LeaseConfig
from taskflow.engine.queue import WorkQueue
from taskflow.engine.ratelimit import (
    ClientLimit,
    ExponentialBackoff,
    TokenBucket,
    choose_limit,
)
from taskflow.engine.registry import RegistryClient, RegistryConfig
from taskflow.engine.resources import PODS, TASKS, Resource
from taskflow.engine.watch import Handler, Reflector
from taskflow.engine.worker import Syncer, run_worker
from taskflow.engine.writer import Writer
from taskflow.labels import MANAGED_BY_SELECTOR
from taskflow.metrics import Metrics
from taskflow.server import SideServer
from taskflow.settings import DEFAULT_SETTINGS, Settings

log = logging.getLogger("taskflow.operator")


def default_identity() -> str:
    """``<hostname>_<random>``: unique per process, recognisable in the Lease."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


#: Reconciles in flight. A new Task's reconcile is a chain of three round trips (pod, Event,
#: status: issue 12's order), so with 4 a burst of creates queues behind the chains while
#: the API server has room; measured on 2 cores (500 Tasks, 16 created at a time, no client
#: limit), 4 / 16 / 64 workers: create -> pod p50 8.7 / 4.3 / 0.7 s, 24 / 44 / 50 Tasks/s.
DEFAULT_WORKERS = 64
#: restartPolicy Always on init containers (KEP-753): beta and on by default since 1.29
NATIVE_SIDECARS_SINCE: Final = (1, 29)


@dataclass
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    workers: int = DEFAULT_WORKERS
    #: client-side API requests/s (0: none); None: none when the API server does API
    #: Priority and Fairness, else 50 (:func:`choose_limit`, decided at start)
    qps: float | None = None
    burst: int | None = None
    backoff_base: float = 0.005
    backoff_cap: float = 60.0
    lease: LeaseConfig | None = None  # None: no leader election
    identity: str = field(default_factory=default_identity)
    bind_address: str = ":8080"
    stream_failure_threshold: float = 120.0
    watch_timeout_range: tuple[int, int] = (240, 360)
    page_size: int = 500
    #: Seconds between re-queues of every unfinished Task (0: never). A safety net: a change
    #: that reached no watch event (or a bug in deciding what an event touches) is still
    #: acted on within one period. Finished Tasks never change, so they are left alone.
    resync_period: float = 600.0
    settings: Settings = DEFAULT_SETTINGS
    #: where and how agent steps' images are looked up (``--registry-mirror``)
    registry: RegistryConfig = field(default_factory=RegistryConfig)


class Operator:
    def __init__(self, kube: Kube, config: OperatorConfig, metrics: Metrics | None = None) -> None:
        if config.workers < 1:
            raise ValueError("workers must be >= 1")
        self.kube = kube
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.reconciling = False
        self.alive = False
        self.cache = Cache(on_change=self._on_change)
        # --qps/--burst pace API requests (as client-go does), not reconciles: a reconcile
        # of a finished Task sends nothing and must not wait for a token. Unset, the limit
        # is chosen in run() once the API server has answered; the fallback until then.
        self.client_limit: ClientLimit = choose_limit(config.qps, config.burst, None)
        kube.limiter = TokenBucket(self.client_limit.qps, self.client_limit.burst)
        kube.metrics = self.metrics
        self.queue: WorkQueue[str] = WorkQueue(
            backoff=ExponentialBackoff(config.backoff_base, config.backoff_cap),
            limiter=TokenBucket(0, 1),  # unlimited
            metrics=self.metrics,
        )
        self.writer = Writer(kube, self.cache, self.metrics, config.identity)
        self.registry = RegistryClient(config.registry)
        self.syncer = Syncer(
            self.cache,
            self.writer,
            config.settings,
            self.metrics,
            leading=lambda: self.is_leader,
            images=ImageResolver(kube, self.registry),
        )
        self.metrics.track_task_states(self.cache.count_by_state)
        scopes: list[str | None] = list(config.namespaces) or [None]
        self.reflectors: list[Reflector] = []
        for ns in scopes:
            self.reflectors.append(self._reflector(TASKS, TaskHandler(self.cache), ns, None))
        for ns in scopes:
            self.reflectors.append(
                self._reflector(PODS, PodHandler(self.cache), ns, MANAGED_BY_SELECTOR)
            )
        self.elector: LeaderElector | None = None
        if config.lease is not None:
            self.elector = LeaderElector(
                kube, config.lease, identity=config.identity, metrics=self.metrics
            )
        self.server = SideServer(
            config.bind_address, health=self.health, ready=self.readiness, metrics=self.metrics
        )

    def _reflector(
        self, resource: Resource, handler: Handler, namespace: str | None, selector: str | None
    ) -> Reflector:
        return Reflector(
            self.kube,
            resource,
            handler,
            namespace=namespace,
            label_selector=selector,
            timeout_range=self.config.watch_timeout_range,
            failure_threshold=self.config.stream_failure_threshold,
            page_size=self.config.page_size,
            metrics=self.metrics,
        )

    # -- state ------------------------------------------------------------------------------

    def _on_change(self, uid: str) -> None:
        if self.reconciling:
            self.queue.add(uid)

    @property
    def synced(self) -> bool:
        return all(r.synced.is_set() for r in self.reflectors)

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def health(self) -> tuple[bool, list[str]]:
        now = time.monotonic()
        lines = []
        ok = self.alive
        lines.append(f"[{'+' if self.alive else '-'}]engine")
        for r in self.reflectors:
            healthy = r.healthy(now)
            ok = ok and healthy
            detail = "" if healthy else f" failing since {now - (r.failing_since or now):.0f}s"
            if r.failing_since is not None and r.last_error:
                detail += f" ({r.last_error})"
            lines.append(f"[{'+' if healthy else '-'}]watch {r.name}{detail}")
        return ok, lines

    def readiness(self) -> tuple[bool, list[str]]:
        lines = [f"[{'+' if r.synced.is_set() else '-'}]synced {r.name}" for r in self.reflectors]
        ok = self.alive and self.synced
        return ok, lines

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Operator] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled (or until a stream or the leadership fails: then it raises).

        ``task_status.started`` fires once the side server listens (``self.server.port``).
        """
        cfg = self.config
        log.info(
            "starting: namespaces=%s workers=%d leader_elect=%s identity=%s",
            ",".join(cfg.namespaces) or "<all>",
            cfg.workers,
            cfg.lease is not None,
            cfg.identity,
        )
        try:
            async with anyio.create_task_group() as tg:
                self.alive = True
                await tg.start(self.server.run)
                tg.start_soon(self.kube.refresh_credentials, name="credentials")
                await self._probe_server()
                for r in self.reflectors:
                    tg.start_soon(r.run, name=f"watch {r.name}")
                if self.elector is not None:
                    tg.start_soon(self.elector.run, name="leader election")
                tg.start_soon(self._control, tg, name="controller")
                task_status.started(self)
        finally:
            self.alive = False
            self.reconciling = False
            self.queue.shutdown()
            with anyio.CancelScope(shield=True):
                await self.registry.close()
            log.info("stopped")

    async def _probe_server(self) -> None:
        """Probe the API server once: pace requests by its APF (unless --qps said); tell the
        core whether it has native sidecars (an unknown version is taken to have them)."""
        facts = await self.kube.probe_server()
        log.info("API server version %s", ".".join(map(str, facts.version or ("unknown",))))
        if facts.version is not None and facts.version < NATIVE_SIDECARS_SINCE:
            self.syncer.settings = msgspec.structs.replace(
                self.syncer.settings, native_sidecars=False
            )
            log.warning("this API server has no native sidecars: Tasks with sidecars will fail")
        apf = None if self.config.qps is not None else facts.apf
        self.client_limit = choose_limit(self.config.qps, self.config.burst, apf)
        self.kube.limiter = TokenBucket(self.client_limit.qps, self.client_limit.burst)
        log.info("API requests: %s", self.client_limit.describe())

    async def _control(self, tg: anyio.abc.TaskGroup) -> None:
        for r in self.reflectors:
            await r.synced.wait()
        log.info("caches synced: %d tasks, %d pods", len(self.cache.tasks), len(self.cache.pods))
        if self.elector is not None:
            await self.elector.leading.wait()
        self.reconciling = True
        for uid in self.cache.task_uids():
            self.queue.add(uid)
        for n in range(self.config.workers):
            tg.start_soon(run_worker, self.queue, self.syncer, self.metrics, n, name=f"w{n}")
        log.info("reconciling with %d workers", self.config.workers)
        if self.config.resync_period > 0:
            tg.start_soon(self._resync, self.config.resync_period, name="resync")

    async def _resync(self, period: float) -> None:
        while True:
            # jitter keeps replicas restarted together from resyncing in step
            await anyio.sleep(period * random.uniform(0.9, 1.1))
            uids = self.cache.unfinished_task_uids()
            for uid in uids:
                self.queue.add(uid)
            log.debug("resync: queued %d unfinished tasks", len(uids))
