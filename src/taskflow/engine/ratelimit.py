"""Backoff and rate limiting primitives (pure: the clock and the random source are injectable)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class ExponentialBackoff:
    """Delay after the n-th consecutive failure: ``base * 2**(n-1)``, jittered, capped.

    ``jitter`` is the relative spread: 0.2 means the delay is drawn uniformly from
    ``[d * 0.9, d * 1.1]`` (and never above ``cap``).
    """

    def __init__(
        self,
        base: float = 0.005,
        cap: float = 60.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rand = rand

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``)."""
        if failures <= 0:
            return 0.0
        exp = min(failures - 1, 62)  # 2**62 * base overflows any cap long before
        d = min(self.cap, self.base * (2.0**exp))
        d *= 1.0 - self.jitter / 2 + self.jitter * self._rand()
        return min(self.cap, d)


class TokenBucket:
    """A token bucket (``rate`` tokens per second, at most ``burst`` stored).

    ``reserve()`` takes one token and returns how long the caller must wait before
    using it (0 when a token was available). Tokens may go negative: waiting callers
    queue up in reservation order, like Go's ``rate.Limiter.Reserve``.
    ``rate <= 0`` disables limiting.
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if burst < 1 and rate > 0:
            raise ValueError("burst must be >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


#: The client-side limit on a server without API Priority and Fairness (the operator's
#: fixed default before it looked for APF).
FALLBACK_QPS = 50.0
FALLBACK_BURST = 100


@dataclass(frozen=True)
class ClientLimit:
    """The QPS/burst an API client paces itself to (``qps`` 0: none), and why."""

    qps: float
    burst: int
    why: str

    def describe(self) -> str:
        if self.qps <= 0:
            return f"no client-side limit ({self.why})"
        return f"{self.qps:g} requests/s, burst {self.burst} ({self.why})"


def choose_limit(qps: float | None, burst: int | None, apf: bool | None) -> ClientLimit:
    """The limit in force: an explicit ``qps`` (``--qps``, 0 = none) always wins; else none
    when the API server does API Priority and Fairness (``apf``: its queues and 429s shed
    load per flow, as controller-runtime >= 0.21 relies on), else the fallback 50/100 (no
    APF headers, or the probe got no answer: ``apf`` None)."""
    chosen_burst = burst if burst is not None else FALLBACK_BURST
    if qps is not None:
        return ClientLimit(qps, chosen_burst, "set by --qps")
    if apf:
        return ClientLimit(0.0, chosen_burst, "the API server does API Priority and Fairness")
    why = (
        "the API server's answers carry no API Priority and Fairness headers"
        if apf is False
        else "could not tell whether the API server does API Priority and Fairness"
    )
    return ClientLimit(FALLBACK_QPS, chosen_burst, why)
