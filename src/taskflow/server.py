"""The side server: ``/healthz``, ``/readyz`` and ``/metrics`` on one port (aiohttp)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskflow.metrics import Metrics

log = logging.getLogger("taskflow.server")

#: A probe: returns ``(ok, detail lines)``.
Check = Callable[[], tuple[bool, list[str]]]


def parse_bind_address(bind: str) -> tuple[str | None, int] | None:
    """``":8080"`` -> (None, 8080) (all interfaces); ``"127.0.0.1:0"``; ``"[::1]:9090"``;
    ``"0"`` -> None (server disabled)."""
    bind = bind.strip()
    if bind == "0":
        return None
    host, sep, port_s = bind.rpartition(":")
    if not sep:
        raise ValueError(f"bind address {bind!r} must look like HOST:PORT or :PORT")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bind address {bind!r}: bad port {port_s!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bind address {bind!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), port


class SideServer:
    def __init__(self, bind: str, *, health: Check, ready: Check, metrics: Metrics) -> None:
        self.address = parse_bind_address(bind)
        self.health = health
        self.ready = ready
        self.metrics = metrics
        self.port: int | None = None
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/livez", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)

    @staticmethod
    def _probe(check: Check) -> web.Response:
        ok, lines = check()
        text = "\n".join([*lines, "ok" if ok else "failed"]) + "\n"
        return web.Response(status=200 if ok else 500, text=text)

    async def _healthz(self, request: web.Request) -> web.Response:
        return self._probe(self.health)

    async def _readyz(self, request: web.Request) -> web.Response:
        return self._probe(self.ready)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; reports the bound port (0 when disabled) via task_status."""
        if self.address is None:
            task_status.started(0)
            await anyio.sleep_forever()
            return
        host, port = self.address
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            sockets = [a for a in runner.addresses if isinstance(a, tuple)]
            self.port = int(sockets[0][1]) if sockets else port
            log.info("serving /healthz /readyz /metrics on %s:%d", host or "*", self.port)
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                await runner.cleanup()
