"""A client-go style work queue on anyio.

Guarantees:

* **Coalescing**: a key added while it is already waiting is queued once.
* **One at a time per key**: a key handed out by :meth:`WorkQueue.get` is *processing*
  until :meth:`WorkQueue.done`; adds in the meantime mark it dirty and it is queued
  again once, after ``done``.
* **Per-key backoff**: :meth:`WorkQueue.add_rate_limited` re-adds after an exponential,
  jittered delay that grows with the key's consecutive failures; :meth:`WorkQueue.forget`
  resets it.
* **Delayed adds**: :meth:`WorkQueue.add_after` (the earliest pending delay wins).
* **Global rate limit**: a token bucket paces how fast keys are handed out.

Only one event loop thread touches the queue, so no locks are needed. Delayed adds need no
timer task of their own: a waiting :meth:`WorkQueue.get` sleeps at most until the earliest
one is due and moves every due one into the queue (so does :meth:`WorkQueue.done`); until a
worker asks for a key nobody could take it anyway.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import anyio

from taskflow.engine.ratelimit import Clock, ExponentialBackoff, TokenBucket
from taskflow.metrics import QUEUE_NAME, Metrics

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        backoff: ExponentialBackoff | None = None,
        limiter: TokenBucket | None = None,
        metrics: Metrics | None = None,
        name: str = QUEUE_NAME,
        clock: Clock = time.monotonic,
    ) -> None:
        self._backoff = backoff if backoff is not None else ExponentialBackoff()
        self._limiter = limiter if limiter is not None else TokenBucket(50.0, 100, clock)
        self._clock = clock
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        #: key -> when its delayed add is due (anyio.current_time()); the heap orders them
        #: and may hold stale entries (a key's later due time that an earlier one replaced)
        self._timers: dict[K, float] = {}
        self._due: list[tuple[float, int, K]] = []
        self._seq = itertools.count()  # ties in the heap never compare keys
        self._getters: deque[anyio.Event] = deque()
        self._shutdown = False
        self._name = name
        self._m_depth = metrics.workqueue_depth.labels(name) if metrics else None
        self._m_adds = metrics.workqueue_adds.labels(name) if metrics else None
        self._m_retries = metrics.workqueue_retries.labels(name) if metrics else None
        self._m_wait = metrics.workqueue_queue_duration.labels(name) if metrics else None
        self._m_work = metrics.workqueue_work_duration.labels(name) if metrics else None

    # -- adding -------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` (coalesced with a pending add; deferred if it is processing)."""
        if self._shutdown:
            return
        if key in self._dirty:
            return
        if self._m_adds is not None:
            self._m_adds.inc()
        self._dirty.add(key)
        self._added_at[key] = self._clock()
        if key in self._processing:
            return
        self._push(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds; an earlier pending delay for it wins."""
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        when = anyio.current_time() + delay
        pending = self._timers.get(key)
        if pending is not None and pending <= when:
            return
        self._timers[key] = when
        heapq.heappush(self._due, (when, next(self._seq), key))
        # a getter asleep until a later due time must wake for this one
        self._wake_one()

    def add_rate_limited(self, key: K) -> float:
        """Re-queue ``key`` after its per-key backoff; returns the delay chosen."""
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        if self._m_retries is not None:
            self._m_retries.inc()
        delay = self._backoff.delay(n)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s failure count (call after a successful reconcile)."""
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    # -- consuming ----------------------------------------------------------------------

    async def get(self) -> K:
        """Wait for a key, then for a rate-limit token; the key is processing until done()."""
        while True:
            self._fire_due()
            if self._queue:
                break
            if self._shutdown:
                raise QueueShutDown
            woken = anyio.Event()
            self._getters.append(woken)
            try:
                with anyio.move_on_after(self._until_next_timer()):
                    await woken.wait()
            except BaseException:
                # cancelled: a wake-up meant for this getter goes to another one
                if woken.is_set() and self._queue:
                    self._wake_one()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._getters.remove(woken)
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        now = self._clock()
        added = self._added_at.pop(key, now)
        if self._m_wait is not None:
            self._m_wait.observe(max(0.0, now - added))
        self._set_depth()
        if self._queue:
            self._wake_one()
        try:
            wait = self._limiter.reserve()
            if wait > 0:
                await anyio.sleep(wait)
        except BaseException:
            self.done(key)
            raise
        self._started_at[key] = self._clock()
        return key

    def done(self, key: K) -> None:
        """Mark ``key`` finished; if it was added meanwhile it is queued again."""
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None and self._m_work is not None:
            self._m_work.observe(max(0.0, self._clock() - started))
        if key in self._dirty and not self._shutdown:
            self._push(key)
        self._fire_due()  # after the push above: a due add of this key coalesces with it

    def shutdown(self) -> None:
        """Stop handing out keys; waiting and future :meth:`get` calls raise QueueShutDown."""
        self._shutdown = True
        self._timers.clear()
        self._due.clear()
        while self._getters:
            self._getters.popleft().set()

    # -- introspection ------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out (the ``workqueue_depth`` metric)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def pending_delay(self, key: K) -> float | None:
        """Seconds until a delayed add of ``key`` fires (None if there is none)."""
        pending = self._timers.get(key)
        return None if pending is None else max(0.0, pending - anyio.current_time())

    # -- internals ----------------------------------------------------------------------

    def _fire_due(self) -> None:
        """Queue every key whose delayed add is due (earliest first)."""
        now = anyio.current_time() if self._due else 0.0
        while self._due and self._due[0][0] <= now:
            when, _, key = heapq.heappop(self._due)
            if self._timers.get(key) == when:  # else stale: replaced by an earlier one
                del self._timers[key]
                self.add(key)

    def _until_next_timer(self) -> float:
        while self._due and self._timers.get(self._due[0][2]) != self._due[0][0]:
            heapq.heappop(self._due)  # stale
        if not self._due:
            return math.inf
        return max(0.0, self._due[0][0] - anyio.current_time())

    def _push(self, key: K) -> None:
        self._queue.append(key)
        self._set_depth()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            woken = self._getters.popleft()
            if not woken.is_set():
                woken.set()
                return

    def _set_depth(self) -> None:
        if self._m_depth is not None:
            self._m_depth.set(len(self._queue))
