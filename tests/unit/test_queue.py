"""Work queue: coalescing, one reconcile at a time per key, backoff, delayed adds, rate limit."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from taskflow.engine.queue import QueueShutDown, WorkQueue
from taskflow.engine.ratelimit import ExponentialBackoff, TokenBucket
from taskflow.metrics import Metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unlimited() -> TokenBucket:
    return TokenBucket(0, 1)


async def test_coalesces_pending_adds() -> None:
    m = Metrics()
    q: WorkQueue[str] = WorkQueue(limiter=unlimited(), metrics=m)
    for _ in range(5):
        q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0
    assert m.registry.get_sample_value("workqueue_adds_total", {"name": "task"}) == 2
    assert m.registry.get_sample_value("workqueue_depth", {"name": "task"}) == 0


async def test_key_dirty_while_processing_is_requeued_once_after_done() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    q.add("a")
    key = await q.get()
    assert q.is_processing("a")
    q.add("a")
    q.add("a")
    # Not handed out again while processing.
    assert len(q) == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.02)
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_one_reconcile_at_a_time_per_key_with_many_workers() -> None:
    q: WorkQueue[int] = WorkQueue(limiter=unlimited())
    active: set[int] = set()
    overlaps = 0
    processed: dict[int, int] = {}

    async def worker() -> None:
        nonlocal overlaps
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in active:
                overlaps += 1
            active.add(key)
            await asyncio.sleep(0.001)
            processed[key] = processed.get(key, 0) + 1
            active.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(20):
        for k in range(5):
            for _ in range(3):
                q.add(k)
        await asyncio.sleep(0.0005)
    await asyncio.sleep(0.05)
    q.shutdown()
    await asyncio.gather(*workers)
    assert overlaps == 0
    assert set(processed) == set(range(5))
    # bursts are coalesced: at most one reconcile per key and round for 3 adds each
    assert sum(processed.values()) <= 5 * 21


async def test_bounded_concurrency_is_the_number_of_workers() -> None:
    q: WorkQueue[int] = WorkQueue(limiter=unlimited())
    running = 0
    peak = 0

    async def worker() -> None:
        nonlocal running, peak
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.002)
            running -= 1
            q.done(key)

    for k in range(50):
        q.add(k)
    workers = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0.1)
    q.shutdown()
    await asyncio.gather(*workers)
    assert peak == 3


async def test_add_after_and_earliest_delay_wins() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    q.add_after("a", 0.2)
    q.add_after("a", 0.02)  # earlier wins
    q.add_after("a", 0.5)  # later is ignored
    assert len(q) == 0
    pending = q.pending_delay("a")
    assert pending is not None
    assert pending <= 0.02
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert 0.01 <= loop.time() - t0 < 0.15
    q.done("a")
    assert q.pending_delay("a") is None
    q.add_after("b", 0)
    assert len(q) == 1


async def test_add_rate_limited_backs_off_exponentially_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(
        limiter=unlimited(), backoff=ExponentialBackoff(0.01, 1.0, jitter=0.0)
    )
    assert q.add_rate_limited("a") == pytest.approx(0.01)
    assert q.add_rate_limited("a") == pytest.approx(0.02)
    assert q.add_rate_limited("a") == pytest.approx(0.04)
    assert q.num_requeues("a") == 3
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.add_rate_limited("a") == pytest.approx(0.01)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_retry_metric_and_queue_duration_observed() -> None:
    m = Metrics()
    q: WorkQueue[str] = WorkQueue(limiter=unlimited(), metrics=m)
    q.add_rate_limited("x")
    assert m.registry.get_sample_value("workqueue_retries_total", {"name": "task"}) == 1
    await asyncio.wait_for(q.get(), 1)
    assert (
        m.registry.get_sample_value("workqueue_queue_duration_seconds_count", {"name": "task"}) == 1
    )
    q.done("x")
    assert (
        m.registry.get_sample_value("workqueue_work_duration_seconds_count", {"name": "task"}) == 1
    )


async def test_global_rate_limit_paces_get() -> None:
    q: WorkQueue[int] = WorkQueue(limiter=TokenBucket(rate=100.0, burst=5))
    for k in range(15):
        q.add(k)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(15):
        key = await q.get()
        q.done(key)
    elapsed = loop.time() - t0
    # 5 from the burst, 10 more at 100/s -> about 0.1 s
    assert 0.08 <= elapsed < 0.5


async def test_shutdown_wakes_waiting_getters() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await getter
    q.add("ignored")
    assert len(q) == 0


async def test_cancelled_getter_does_not_lose_a_key() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    g1 = asyncio.create_task(q.get())
    g2 = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("a")
    g1.cancel()
    got = await asyncio.wait_for(g2, 1)
    assert got == "a"


def test_backoff_is_capped_and_jittered() -> None:
    b = ExponentialBackoff(0.005, 60.0, jitter=0.2, rand=lambda: 1.0)
    assert b.delay(0) == 0
    assert b.delay(1) == pytest.approx(0.005 * 1.1)
    assert b.delay(2) == pytest.approx(0.01 * 1.1)
    assert b.delay(100) == 60.0
    low = ExponentialBackoff(0.005, 60.0, jitter=0.2, rand=lambda: 0.0)
    assert low.delay(3) == pytest.approx(0.02 * 0.9)
    with pytest.raises(ValueError, match="base"):
        ExponentialBackoff(0, 1)


def test_token_bucket_burst_then_rate() -> None:
    clock = FakeClock()
    tb = TokenBucket(rate=10.0, burst=3, clock=clock)
    assert [tb.reserve() for _ in range(3)] == [0, 0, 0]
    assert tb.reserve() == pytest.approx(0.1)
    assert tb.reserve() == pytest.approx(0.2)
    clock.now += 1.0  # refills 10 tokens, capped at burst 3 (after paying back the debt of 2)
    assert tb.reserve() == 0
    assert TokenBucket(0, 1).reserve() == 0


async def test_a_getter_already_waiting_wakes_for_a_later_delayed_add() -> None:
    """No timer task: the sleeping getter must learn of a due time added after it slept."""
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    got: list[str] = []

    async def getter() -> None:
        got.append(await q.get())

    t0 = anyio.current_time()
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(getter)
            await anyio.wait_all_tasks_blocked()  # the getter sleeps with no timer pending
            q.add_after("a", 0.03)
    assert got == ["a"]
    assert 0.02 <= anyio.current_time() - t0 < 0.5


async def test_a_delayed_add_due_while_the_key_is_processing_requeues_it_after_done() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    q.add("a")
    assert await q.get() == "a"
    q.add_after("a", 0.01)
    await anyio.sleep(0.03)  # the delay passes while "a" is processing
    assert q.pending_delay("a") == 0.0
    assert len(q) == 0  # not handed out while processing
    q.done("a")
    assert len(q) == 1
    assert q.pending_delay("a") is None
    assert await q.get() == "a"


async def test_an_earlier_delay_replaces_a_later_one_which_never_fires() -> None:
    q: WorkQueue[str] = WorkQueue(limiter=unlimited())
    q.add_after("a", 0.05)
    q.add_after("a", 0.01)
    with anyio.fail_after(1):
        assert await q.get() == "a"
    q.done("a")
    q.add_after("a", 0.2)  # the stale 0.05 entry must not fire this one early
    t0 = anyio.current_time()
    with anyio.fail_after(1):
        assert await q.get() == "a"
    assert anyio.current_time() - t0 >= 0.15
