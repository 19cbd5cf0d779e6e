"""The client-side limit chosen at start: API Priority and Fairness detected from one answer's
headers (a loopback HTTP server plays the API server), and the limit each case gets."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from taskflow.engine.kube import (
    APF_HEADERS,
    APF_PROBE_PATH,
    Kube,
    ServerFacts,
    carries_apf,
    server_version,
)
from taskflow.engine.operator import Operator, OperatorConfig
from taskflow.engine.ratelimit import FALLBACK_BURST, FALLBACK_QPS, choose_limit

FS, PL = APF_HEADERS
BOTH = {FS: "fs-uid", PL: "pl-uid"}


@pytest.mark.parametrize(
    ("headers", "apf"),
    [
        (BOTH, True),
        ({FS.lower(): "a", PL.upper(): "b"}, True),  # header names are case-insensitive
        ({FS: "fs-uid"}, False),  # half of it is not APF
        ({"Content-Type": "application/json"}, False),
        ({}, False),
    ],
)
def test_carries_apf(headers: dict[str, str], apf: bool) -> None:
    assert carries_apf(headers) is apf


@pytest.mark.parametrize(
    ("qps", "burst", "apf", "want"),
    [
        (None, None, True, (0.0, FALLBACK_BURST)),  # APF: no client-side limit
        (None, None, False, (FALLBACK_QPS, FALLBACK_BURST)),  # no APF: the fixed 50/100
        (None, None, None, (FALLBACK_QPS, FALLBACK_BURST)),  # no answer: the safe side
        (None, 30, False, (FALLBACK_QPS, 30)),
        (5.0, None, True, (5.0, FALLBACK_BURST)),  # --qps wins over APF
        (5.0, 2, None, (5.0, 2)),
        (0.0, None, False, (0.0, FALLBACK_BURST)),  # --qps 0: none, APF or not
    ],
)
def test_choose_limit(
    qps: float | None, burst: int | None, apf: bool | None, want: tuple[float, int]
) -> None:
    limit = choose_limit(qps, burst, apf)
    assert (limit.qps, limit.burst) == want
    assert limit.why


def test_the_limit_in_force_says_why() -> None:
    assert choose_limit(None, None, True).describe() == (
        "no client-side limit (the API server does API Priority and Fairness)"
    )
    assert choose_limit(None, None, False).describe().startswith("50 requests/s, burst 100 (")
    assert "--qps" in choose_limit(5, 2, True).describe()


@asynccontextmanager
async def api_server(
    headers: dict[str, str], status: int = 200, minor: str = "34+"
) -> AsyncIterator[tuple[Callable[[], Kube], list[str]]]:
    """A loopback server answering every request with ``status`` and ``headers``; yields a
    Kube factory for it and the paths requested."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        version = {"major": "1", "minor": minor}
        return web.json_response(version, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield (lambda: Kube(ApiClient(configuration=Configuration(host=host)))), seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("headers", "status", "apf"),
    [
        (BOTH, 200, True),
        (BOTH, 403, True),  # classified before it was refused: still APF
        ({}, 200, False),
        ({PL: "pl-uid"}, 200, False),
    ],
)
async def test_the_probe_reads_one_answers_headers(
    headers: dict[str, str], status: int, apf: bool
) -> None:
    async with api_server(headers, status) as (make, seen):
        kube = make()
        try:
            assert (await kube.probe_server()).apf is apf
        finally:
            await kube.close()
    assert seen == [APF_PROBE_PATH]


@pytest.mark.parametrize(
    ("body", "version"),
    [
        (b'{"major": "1", "minor": "34"}', (1, 34)),
        (b'{"major": "1", "minor": "28+", "gitVersion": "v1.28.3-eks"}', (1, 28)),
        (b'{"major": "1"}', None),
        (b'{"major": "", "minor": "x"}', None),
        (b"[]", None),
        (b"<html>", None),
    ],
)
def test_server_version(body: bytes, version: tuple[int, int] | None) -> None:
    assert server_version(body) == version


async def test_the_probe_reads_the_version_of_a_200_only() -> None:
    async with api_server({}, 200) as (make, _):
        kube = make()
        try:
            assert await kube.probe_server() == ServerFacts(apf=False, version=(1, 34))
        finally:
            await kube.close()
    async with api_server(BOTH, 403) as (make, _):
        kube = make()
        try:
            assert await kube.probe_server() == ServerFacts(apf=True, version=None)
        finally:
            await kube.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connections are refused


async def test_the_probe_without_an_answer_knows_nothing() -> None:
    kube = Kube(ApiClient(configuration=Configuration(host=f"http://127.0.0.1:{closed_port()}")))
    try:
        assert await kube.probe_server(seconds=2.0) == ServerFacts()
    finally:
        await kube.close()


@pytest.mark.parametrize(
    ("qps", "headers", "rate", "probes"),
    [
        (None, BOTH, 0.0, 1),  # defaults + APF: unlimited
        (None, {}, FALLBACK_QPS, 1),  # defaults, no APF: 50/100
        (5.0, BOTH, 5.0, 1),  # --qps: APF does not matter (the probe still reads the version)
    ],
)
async def test_the_operator_paces_itself_by_what_it_detects(
    qps: float | None, headers: dict[str, str], rate: float, probes: int
) -> None:
    async with api_server(headers) as (make, seen):
        kube = make()
        try:
            op = Operator(kube, OperatorConfig(qps=qps, bind_address="127.0.0.1:0"))
            assert kube.limiter.rate == (FALLBACK_QPS if qps is None else qps)  # until probed
            await op._probe_server()
            assert kube.limiter.rate == rate
            assert op.client_limit.qps == rate
        finally:
            await kube.close()
    assert seen.count(APF_PROBE_PATH) == probes


@pytest.mark.parametrize(
    ("minor", "native"), [("28", False), ("29", True), ("34+", True), ("x", True)]
)
async def test_the_operator_knows_whether_the_server_has_native_sidecars(
    minor: str, native: bool
) -> None:
    async with api_server(BOTH, minor=minor) as (make, _):
        kube = make()
        try:
            op = Operator(kube, OperatorConfig(bind_address="127.0.0.1:0"))
            await op._probe_server()
            assert op.syncer.settings.native_sidecars is native
        finally:
            await kube.close()
