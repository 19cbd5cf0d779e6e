"""The engine's client side against a misbehaving API server.

A tiny aiohttp server on 127.0.0.1 plays the parts of the API server these tests need (a
Lease; a pod collection) and misbehaves on purpose: it black-holes lease renewals, answers
429/503 with Retry-After, and records when requests arrive. Traffic stays on loopback,
every wait is bounded, and the real :class:`Kube` client (kubernetes-asyncio's
configuration and aiohttp session) is used unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from taskflow.engine.kube import ApiError, Kube
from taskflow.engine.leader import LeaderElector, LeadershipLost, LeaseConfig
from taskflow.engine.ratelimit import ExponentialBackoff, TokenBucket
from taskflow.metrics import Metrics

pytestmark = pytest.mark.loopback  # a fake API server or registry on 127.0.0.1: no cluster

LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
PODS = "/api/v1/namespaces/ns/pods"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeApi:
    """One Lease (get / create / update with resourceVersion preconditions) and a scripted
    pod collection. ``blackholed`` ports get no answer to lease requests at all."""

    lease: dict[str, Any] | None = None
    rv: int = 0
    blackholed: set[int] = field(default_factory=set)
    #: answers for POST/GET on PODS, in order: (status, Retry-After or None); then 200s
    pod_answers: list[tuple[int, str | None]] = field(default_factory=list)
    pod_requests: list[float] = field(default_factory=list)
    released: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(LEASES):
            port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
            if port in self.blackholed:
                with anyio.move_on_after(30):  # released at teardown; bounded regardless
                    await self.released.wait()
                return web.Response(status=504)
            return await self._lease(request)
        if request.path == PODS:
            return await self._pods(request)
        if request.path == PODS + "/watch-me":
            return await self._stream(request)
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    async def _lease(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            if self.lease is None:
                return web.json_response({"kind": "Status", "code": 404}, status=404)
            return web.json_response(self.lease)
        body = json.loads(await request.read())
        if request.method == "POST" and self.lease is not None:
            return web.json_response({"kind": "Status", "code": 409}, status=409)
        if request.method == "PUT":
            current = (self.lease or {}).get("metadata", {}).get("resourceVersion")
            if body.get("metadata", {}).get("resourceVersion") != current:
                return web.json_response({"kind": "Status", "code": 409}, status=409)
        self.rv += 1
        body.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        self.lease = body
        return web.json_response(body, status=201 if request.method == "POST" else 200)

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        self.pod_requests.append(time.monotonic())
        if self.pod_answers:
            status, retry_after = self.pod_answers.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            body = {"kind": "Status", "code": status, "message": "slow down"}
            return web.json_response(body, status=status, headers=headers)
        return web.json_response({"kind": "PodList", "items": []})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"}}}\n')
        return resp


@asynccontextmanager
async def serve(api: FakeApi, ports: int = 1) -> AsyncIterator[list[int]]:
    """Run ``api`` on ``ports`` loopback ports; yields them."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    found: list[int] = []
    try:
        for _ in range(ports):
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            found.append(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        yield found
    finally:
        api.released.set()
        await runner.cleanup()


@asynccontextmanager
async def client(port: int, **kw: Any) -> AsyncIterator[Kube]:
    cfg = Configuration(host=f"http://127.0.0.1:{port}")
    kube = Kube(ApiClient(configuration=cfg), **kw)
    try:
        yield kube
    finally:
        await kube.close()


async def first_time(check: Callable[[], bool], within: float, interval: float = 0.01) -> float:
    """Poll ``check`` until it holds; return the monotonic time it was first seen true."""
    with anyio.fail_after(within):
        while not check():  # noqa: ASYNC110 - a polled condition, bounded by fail_after
            await anyio.sleep(interval)
    return time.monotonic()


def elector(kube: Kube, identity: str) -> LeaderElector:
    return LeaderElector(
        kube,
        LeaseConfig(
            namespace="ns", name="lease", duration=3.0, renew_deadline=2.0, retry_period=0.25
        ),
        identity=identity,
    )


# -- leader election ---------------------------------------------------------------------------


async def test_a_black_holed_renewal_stops_leading_before_the_lease_expires() -> None:
    api = FakeApi()
    async with serve(api) as [port], client(port) as kube:
        a = elector(kube, "a")
        lost: list[float] = []

        async def run() -> None:
            try:
                await a.run()
            except LeadershipLost:
                lost.append(time.monotonic())

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await first_time(lambda: a.is_leader and api.rv >= 3, within=5)  # renewing
                api.blackholed.add(port)
                off = await first_time(lambda: not a.is_leader, within=5)
                await first_time(lambda: bool(lost), within=5)
        assert a.renewed_at is not None
        # is_leader turned false at the renew deadline, and run() gave up by then too:
        # well before the lease (3 s after the last renewal) can expire for anyone else
        # (slack for a loaded machine: polled every 10 ms)
        assert 2.0 - 0.05 <= off - a.renewed_at < 2.5
        assert lost[0] - a.renewed_at < 3.0


async def test_never_two_leaders_when_the_leaders_renewals_are_black_holed() -> None:
    api = FakeApi()
    async with serve(api, ports=2) as [port_a, port_b], client(port_a) as ka, client(port_b) as kb:
        a, b = elector(ka, "a"), elector(kb, "b")
        both: list[float] = []

        async def run(e: LeaderElector) -> None:
            with suppress(LeadershipLost):
                await e.run()

        async def watch_both() -> None:
            while True:
                if a.is_leader and b.is_leader:
                    both.append(time.monotonic())
                await anyio.sleep(0.005)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_both)
                tg.start_soon(run, a)
                await first_time(lambda: a.is_leader, within=5)
                tg.start_soon(run, b)
                await anyio.sleep(0.5)  # b is a standby now
                assert not b.is_leader
                api.blackholed.add(port_a)
                a_off = await first_time(lambda: not a.is_leader, within=5)
                b_on = await first_time(lambda: b.is_leader, within=8)
                assert api.lease is not None
                holder = api.lease["spec"]["holderIdentity"]
                tg.cancel_scope.cancel()  # b releases the lease on the way out
        assert both == []
        assert b_on > a_off
        assert holder == "b"


# -- 429 / Retry-After and the client-side QPS bucket ------------------------------------------


def retries(metrics: Metrics, code: str, verb: str) -> float:
    value = metrics.registry.get_sample_value(
        "rest_client_request_retries_total", {"code": code, "verb": verb}
    )
    return value or 0.0


FAST = ExponentialBackoff(0.01, 0.05, jitter=0.0)


async def test_429_and_503_with_retry_after_are_retried_after_the_wait() -> None:
    api = FakeApi(pod_answers=[(429, "1"), (429, None), (503, "0")])
    metrics = Metrics()
    async with serve(api) as [port], client(port, metrics=metrics, backoff=FAST) as kube:
        t0 = time.monotonic()
        with anyio.fail_after(10):
            data = await kube.request("POST", PODS, body=b"{}")
        elapsed = time.monotonic() - t0
    assert json.loads(data)["kind"] == "PodList"
    assert len(api.pod_requests) == 4
    gaps = [b - a for a, b in zip(api.pod_requests, api.pod_requests[1:], strict=False)]
    assert gaps[0] >= 0.95  # Retry-After: 1
    assert gaps[1] >= 0.95  # a 429 without Retry-After waits 1 s
    assert elapsed < 5
    assert retries(metrics, "429", "POST") == 2
    assert retries(metrics, "503", "POST") == 1


async def test_retries_are_bounded_and_other_errors_are_not_retried() -> None:
    api = FakeApi(pod_answers=[(429, "0")] * 10 + [(503, None), (500, "0")])
    metrics = Metrics()
    async with (
        serve(api) as [port],
        client(port, metrics=metrics, backoff=FAST, max_retries=3) as kube,
    ):
        with anyio.fail_after(10), pytest.raises(ApiError) as err:
            await kube.request("GET", PODS)
        assert err.value.status == 429
        assert len(api.pod_requests) == 4  # 1 + 3 retries
        api.pod_answers = [(503, None), (500, "0")]
        for status in (503, 500):
            with anyio.fail_after(10), pytest.raises(ApiError) as err:
                await kube.request("GET", PODS)
            assert err.value.status == status
        assert len(api.pod_requests) == 6
    assert retries(metrics, "429", "GET") == 3


async def test_requests_are_paced_by_qps_and_burst_but_streams_are_not() -> None:
    api = FakeApi()
    metrics = Metrics()
    limiter = TokenBucket(rate=20.0, burst=5)
    async with serve(api) as [port], client(port, limiter=limiter, metrics=metrics) as kube:
        t0 = time.monotonic()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(25):
                    tg.start_soon(kube.request, "GET", PODS)
        elapsed = time.monotonic() - t0
        # 5 at once, then 20 at 20/s
        assert elapsed >= 0.95
        arrivals = sorted(t - t0 for t in api.pod_requests)
        for n, t in enumerate(arrivals):
            assert n + 1 <= 5 + 20 * t + 1, (n, t)  # never ahead of the bucket
        # the bucket is empty now; a watch stream still connects at once
        t1 = time.monotonic()
        with anyio.fail_after(5):
            async with kube.stream(PODS + "/watch-me", read_timeout=5) as body:
                lines = [line async for line in body]
        assert time.monotonic() - t1 < 0.5
        assert b"BOOKMARK" in lines[0]
    waited = metrics.registry.get_sample_value(
        "rest_client_rate_limiter_duration_seconds_sum", {"verb": "GET"}
    )
    assert waited is not None
    assert waited > 5.0  # 20 requests waited 0.05 .. 1.0 s each
