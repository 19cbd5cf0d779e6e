"""Leader election on a ``coordination.k8s.io/v1`` Lease (get / create / update only).

A small re-implementation of client-go's algorithm (kubernetes-asyncio's elector cannot
release the lease and mixes local wall-clock time into lease timestamps):

* a candidate takes the lease when it does not exist, has no holder, or its holder has
  not renewed it for ``duration`` seconds *as observed on our monotonic clock*;
* the leader renews every ``retry_period`` seconds; all writes are PUTs carrying the
  resourceVersion read before (optimistic concurrency), so two candidates never both win;
* a leader that cannot renew within ``renew_deadline`` of its last successful renewal
  has lost: :meth:`LeaderElector.run` raises :class:`LeadershipLost` (the operator exits,
  like controller-runtime does). Every attempt is cut off at that deadline (a black-holed
  PUT must not hang for the HTTP timeout while the lease runs out), and :attr:`is_leader`
  turns False by the clock at the deadline even before the loop notices, so nothing acts
  as leader once another replica may (``renew_deadline < duration``);
* lease requests skip the client's QPS bucket (controller-runtime gives leader election a
  client of its own for the same reason);
* on shutdown the leader releases the lease (empty holder) so a standby takes over at
  its next retry instead of waiting for the lease to expire.

The timings (all in :class:`LeaseConfig`) are client-go's ``LeaseDuration``,
``RenewDeadline`` and ``RetryPeriod``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import msgspec

from taskflow.engine.kube import ApiError, Kube, in_cluster_namespace
from taskflow.metrics import Metrics

log = logging.getLogger("taskflow.leader")

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class LeadershipLost(Exception):
    """The lease could not be renewed in time; another replica may be leading now."""


def micro_time(t: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base


@dataclass(frozen=True)
class LeaseConfig:
    """Which Lease to hold and how fast to act on it (``--lease-*``, ``--renew-deadline``,
    ``--retry-period``)."""

    namespace: str | None = None  # None: our own namespace in a pod, else "default"
    name: str = "taskflow-leader"
    #: how long standbys wait before taking over an unrenewed lease
    duration: float = 15.0
    #: the leader gives up if it cannot renew for this long
    renew_deadline: float = 10.0
    #: between renewals (leader) and attempts (standby)
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # The deadline must pass before the lease can expire for a standby, and a renewal
        # must fit before the deadline.
        if not self.duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "need lease duration > renew deadline > retry period > 0, got "
                f"{self.duration:g} / {self.renew_deadline:g} / {self.retry_period:g}"
            )


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        *,
        identity: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.config = config
        #: ``config.namespace``, or where we run
        self.namespace = config.namespace or in_cluster_namespace()
        self.identity = identity
        self._clock = clock
        # set while leading (the operator waits on it); see is_leader for the whole truth
        self.leading = anyio.Event()
        #: monotonic time the last successful acquire/renew was *sent* (its renewTime)
        self.renewed_at: float | None = None
        self._lease: dict[str, Any] | None = None  # last lease object we read or wrote
        self._observed: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time it was first seen
        self._gauge = metrics.leader.labels(config.name) if metrics is not None else None
        if self._gauge is not None:
            self._gauge.set(0)

    @property
    def is_leader(self) -> bool:
        """Leading, and the last renewal is younger than ``renew_deadline`` (so the lease
        cannot have expired for anyone else yet)."""
        return (
            self.leading.is_set()
            and self.renewed_at is not None
            and self._clock() - self.renewed_at < self.config.renew_deadline
        )

    # -- one attempt --------------------------------------------------------------------

    def _spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        old = old or {}
        ours = old.get("holderIdentity") == self.identity
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.config.duration)),
            "acquireTime": old.get("acquireTime") if ours and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or not old else transitions + 1,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round of the algorithm; True when we hold the lease afterwards."""
        # Fast path for the leader: update the lease we wrote last (409 -> full path).
        if self._lease is not None and self.leading.is_set() and await self._update(self._lease):
            return True
        try:
            lease = _decoder.decode(
                await self.kube.request(
                    "GET", lease_path(self.namespace, self.config.name), rate_limited=False
                )
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            return await self._create()
        spec = lease.get("spec") or {}
        observed = (spec.get("holderIdentity"), spec.get("renewTime"))
        now = self._clock()
        if observed != self._observed:
            self._observed = observed
            self._observed_at = now
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.config.duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # someone else holds a live lease
        return await self._update(lease)

    async def _create(self) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.namespace},
            "spec": self._spec(None),
        }
        sent = self._clock()
        try:
            data = await self.kube.request(
                "POST", lease_path(self.namespace), body=_encoder.encode(body), rate_limited=False
            )
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        self._took(_decoder.decode(data), sent)
        return True

    async def _update(self, lease: dict[str, Any]) -> bool:
        body = dict(lease)
        body["spec"] = self._spec(lease.get("spec"))
        sent = self._clock()
        try:
            data = await self.kube.request(
                "PUT",
                lease_path(self.namespace, self.config.name),
                body=_encoder.encode(body),
                rate_limited=False,
            )
        except ApiError as exc:
            if exc.status == 409:
                self._lease = None
                return False
            raise
        self._took(_decoder.decode(data), sent)
        return True

    def _took(self, lease: dict[str, Any], sent: float) -> None:
        self._lease = lease
        self.renewed_at = sent
        spec = lease.get("spec") or {}
        self._observed = (spec.get("holderIdentity"), spec.get("renewTime"))
        self._observed_at = self._clock()

    # -- loops --------------------------------------------------------------------------

    async def _attempt(self, budget: float) -> bool:
        """One round, cut off after ``budget`` seconds (False: not leading after it)."""
        try:
            with anyio.fail_after(max(0.0, budget)):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            log.warning(
                "lease %s/%s: no answer within %.1fs", self.namespace, self.config.name, budget
            )
            return False
        except (ApiError, OSError, ValueError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.config.name, exc)
            return False
        except Exception as exc:  # aiohttp client errors and the like
            log.warning(
                "lease %s/%s: %s: %s", self.namespace, self.config.name, type(exc).__name__, exc
            )
            return False

    async def acquire(self) -> None:
        """Block until we are the leader."""
        log.info(
            "waiting to lead via lease %s/%s as %s", self.namespace, self.config.name, self.identity
        )
        while not await self._attempt(self.config.renew_deadline):  # noqa: ASYNC110 - polling
            await anyio.sleep(self.config.retry_period)
        self.leading.set()
        if self._gauge is not None:
            self._gauge.set(1)
        log.info("became leader (lease %s/%s, %s)", self.namespace, self.config.name, self.identity)

    async def renew_forever(self) -> None:
        """Renew every ``retry_period``; raise LeadershipLost once ``renew_deadline`` has
        passed since the last successful renewal (each attempt is cut off at it)."""
        while True:
            await anyio.sleep(self.config.retry_period)
            assert self.renewed_at is not None
            deadline = self.renewed_at + self.config.renew_deadline
            while not await self._attempt(deadline - self._clock()):
                if self._clock() + self.config.retry_period >= deadline:
                    self._lost()
                    raise LeadershipLost(
                        f"could not renew lease {self.namespace}/{self.config.name} "
                        f"within {self.config.renew_deadline:g}s"
                    )
                await anyio.sleep(self.config.retry_period)

    def _lost(self) -> None:
        self.leading = anyio.Event()  # an anyio Event cannot be cleared: a fresh, unset one
        self._lease = None
        if self._gauge is not None:
            self._gauge.set(0)

    async def run(self) -> None:
        """acquire() then renew_forever(); releases the lease when stopped."""
        try:
            await self.acquire()
            await self.renew_forever()
        finally:
            lease = self._lease if self.is_leader else None
            if self.leading.is_set():
                self._lost()
            if lease is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(3.0):
                    await self.release(lease)

    async def release(self, lease: dict[str, Any]) -> None:
        """Hand the lease back: empty holder, so a standby takes it at once."""
        body = dict(lease)
        spec = dict(lease.get("spec") or {})
        now = micro_time(datetime.now(UTC))
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
        body["spec"] = spec
        try:
            await self.kube.request(
                "PUT",
                lease_path(self.namespace, self.config.name),
                body=_encoder.encode(body),
                request_timeout=3.0,
                rate_limited=False,
            )
            log.info("released lease %s/%s", self.namespace, self.config.name)
        except Exception as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.config.name, exc)
