"""List+watch streams ("reflectors") with raw msgspec decoding.

One :class:`Reflector` keeps one resource in one scope (a namespace, or all) in sync:

1. paginated LIST (``limit`` + ``continue``), handed to the handler as a full replacement;
2. WATCH from the list's ``resourceVersion`` with bookmarks, a randomised server-side
   ``timeoutSeconds`` and a client read timeout a bit above it; when the server closes
   the stream normally we watch again from the last resourceVersion seen;
3. ``410 Gone`` (HTTP status, or an ``ERROR`` event with code 410) -> LIST again;
4. any other failure -> reconnect with exponential backoff and jitter. A stream failing
   for longer than ``failure_threshold`` seconds turns unhealthy and :meth:`Reflector.run`
   raises :class:`StreamFailed` (the operator then exits non-zero): never a silent death.

Health counts from the last *good news*: a LIST that completed, or an event or bookmark
read from a watch. A connect alone is not news (a proxy or an overloaded server can accept
every connection and then break it), and a watch that the server closes at once without
a word is treated as a failure (backoff), as client-go does, instead of a hot loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import anyio
import msgspec

from taskflow.engine.kube import ApiError, StreamClient
from taskflow.engine.ratelimit import Clock, ExponentialBackoff
from taskflow.engine.resources import Resource
from taskflow.metrics import Metrics

log = logging.getLogger("taskflow.watch")


# -- wire formats ---------------------------------------------------------------------------


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""
    continue_: str = msgspec.field(name="continue", default="")


class ListPage(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] | None = None


class WatchEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _RVMeta(msgspec.Struct):
    resourceVersion: str = ""


class _HasRV(msgspec.Struct):
    metadata: _RVMeta = msgspec.field(default_factory=_RVMeta)


class WatchStatus(msgspec.Struct):
    code: int = 0
    reason: str = ""
    message: str = ""


_list_decoder = msgspec.json.Decoder(ListPage)
_event_decoder = msgspec.json.Decoder(WatchEvent)
_rv_decoder = msgspec.json.Decoder(_HasRV)
_status_decoder = msgspec.json.Decoder(WatchStatus)


class Gone(Exception):
    """410: our resourceVersion is too old (compacted); a fresh LIST is needed."""


class WatchError(Exception):
    """The server reported an error inside the watch stream (an ``ERROR`` event); ``message``
    is the server's own words."""

    def __init__(self, text: str, message: str = "") -> None:
        super().__init__(text)
        self.message = message or text


class StreamFailed(Exception):
    """A stream could not recover within its failure threshold."""


#: A watch closed by the server sooner than this without one event or bookmark is a failure.
MIN_WATCH_SECONDS = 1.0


def decode_list_page(data: bytes) -> ListPage:
    return _list_decoder.decode(data)


def decode_watch_line(line: bytes) -> WatchEvent:
    """Decode one watch line; an ``ERROR`` event becomes :class:`Gone` (410) or WatchError."""
    event = _event_decoder.decode(line)
    if event.type == "ERROR":
        status = _status_decoder.decode(event.object)
        if status.code == 410:
            raise Gone(status.message or status.reason or "410 Gone")
        raise WatchError(
            f"watch error {status.code} {status.reason}: {status.message}", status.message
        )
    return event


def resource_version_of(raw: msgspec.Raw | bytes) -> str:
    return _rv_decoder.decode(raw).metadata.resourceVersion


# -- handler --------------------------------------------------------------------------------


class Handler(Protocol):
    """Receives a stream's objects as raw JSON (the handler decodes them)."""

    def replace(
        self, namespace: str | None, items: list[msgspec.Raw], resource_version: str
    ) -> None:
        """The complete set of objects in scope as of ``resource_version`` (the initial LIST
        and every relist)."""

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        """One ``ADDED`` / ``MODIFIED`` / ``DELETED`` event."""


# -- the reflector --------------------------------------------------------------------------

RETRYABLE: tuple[type[BaseException], ...] = (
    ApiError,
    WatchError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
    ValueError,  # msgspec.DecodeError, aiohttp "line too long"
)


class Reflector:
    def __init__(
        self,
        client: StreamClient,
        resource: Resource,
        handler: Handler,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        name: str | None = None,
        page_size: int = 500,
        timeout_range: tuple[int, int] = (240, 360),
        read_timeout_slack: float = 30.0,
        failure_threshold: float = 120.0,
        backoff: ExponentialBackoff | None = None,
        metrics: Metrics | None = None,
        clock: Clock = time.monotonic,
        rand: Callable[[int, int], int] = random.randint,
        sleep: Callable[[float], Any] = anyio.sleep,
        start_resource_version: str | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.handler = handler
        self.namespace = namespace
        self.label_selector = label_selector
        self.name = name or f"{resource.plural}@{namespace or '*'}"
        self.page_size = page_size
        self.timeout_range = timeout_range
        self.read_timeout_slack = read_timeout_slack
        self.failure_threshold = failure_threshold
        self.backoff = backoff if backoff is not None else ExponentialBackoff(0.5, 30.0)
        self._clock = clock
        self._rand = rand
        self._sleep = sleep
        self._metrics = metrics
        self.resource_version: str | None = start_resource_version
        self.synced = anyio.Event()
        self.failing_since: float | None = None
        self.last_contact: float | None = None
        self.relists = 0
        self.errors = 0
        self.last_error: str | None = None

    # -- health -----------------------------------------------------------------------------

    def healthy(self, now: float | None = None) -> bool:
        """False once the stream has been failing for longer than the threshold."""
        if self.failing_since is None:
            return True
        now = self._clock() if now is None else now
        return now - self.failing_since < self.failure_threshold

    def _ok(self) -> None:
        """Good news from the server (a LIST, an event, a bookmark): the stream works."""
        self.failing_since = None
        self.last_contact = self._clock()

    # -- main loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; raises :class:`StreamFailed` when it cannot recover."""
        failures = 0
        gones = 0
        while True:
            try:
                if self.resource_version is None:
                    await self.list()
                await self.watch()
                failures = 0
                gones = 0
            except Gone as exc:
                gones += 1
                log.info("%s: %s; listing again", self.name, exc)
                self.resource_version = None
                if gones > 1:  # repeated 410s: do not hammer the server
                    await self._sleep(self.backoff.delay(gones - 1))
            except RETRYABLE as exc:
                failures += 1
                self.errors += 1
                self.last_error = self._describe(exc)
                if self._metrics is not None:
                    self._metrics.watch_errors.labels(self.resource.plural).inc()
                now = self._clock()
                if self.failing_since is None:
                    self.failing_since = now
                if not self.healthy(now):
                    log.error(
                        "%s: failing for %.0fs (> %.0fs), giving up: %s",
                        self.name,
                        now - self.failing_since,
                        self.failure_threshold,
                        self.last_error,
                    )
                    raise StreamFailed(f"{self.name}: {self.last_error}") from exc
                delay = self.backoff.delay(failures)
                log.warning(
                    "%s: stream error (attempt %d), retrying in %.2fs: %s",
                    self.name,
                    failures,
                    delay,
                    self.last_error,
                )
                await self._sleep(delay)

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ApiError) and exc.status == 404 and self.resource.group:
            # the usual cause: the operator was started before its CRD was applied
            crd = f"{self.resource.plural}.{self.resource.group}"
            text += f" (is the CRD {crd} installed? `taskflow crd | kubectl apply -f -`)"
        return text

    def _query(self) -> dict[str, str | int]:
        q: dict[str, str | int] = {}
        if self.label_selector:
            q["labelSelector"] = self.label_selector
        return q

    async def list(self) -> None:
        """Paginated LIST; hands the complete set to the handler; records its RV."""
        path = self.resource.collection(self.namespace)
        items: list[msgspec.Raw] = []
        cont = ""
        while True:
            q = self._query()
            q["limit"] = self.page_size
            if cont:
                q["continue"] = cont
            try:
                data = await self.client.request("GET", path, query=q, request_timeout=60.0)
            except ApiError as exc:
                if exc.status == 410:  # continue token expired: start over
                    raise Gone(exc.message or "continue token expired") from exc
                raise
            page = decode_list_page(data)
            if page.items:
                items.extend(page.items)
            cont = page.metadata.continue_
            if not cont:
                rv = page.metadata.resourceVersion
                break
        self.handler.replace(self.namespace, items, rv)
        self.resource_version = rv
        self.relists += 1
        if self._metrics is not None:
            self._metrics.watch_relists.labels(self.resource.plural).inc()
        self._ok()
        self.synced.set()
        log.debug("%s: listed %d objects at rv %s", self.name, len(items), rv)

    async def watch(self) -> None:
        """One WATCH request from ``resource_version`` until the server ends it."""
        assert self.resource_version is not None
        timeout = self._rand(*self.timeout_range)
        q = self._query()
        q.update(
            watch="true",
            resourceVersion=self.resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=timeout,
        )
        path = self.resource.collection(self.namespace)
        started = self._clock()
        events = 0
        try:
            async with self.client.stream(
                path, query=q, read_timeout=timeout + self.read_timeout_slack
            ) as body:
                async for line in body:
                    if not line.strip():
                        continue
                    event = decode_watch_line(line)
                    events += 1
                    self._ok()
                    if event.type == "BOOKMARK":
                        self.resource_version = resource_version_of(event.object)
                        continue
                    self.handler.apply(event.type, event.object)
                    rv = resource_version_of(event.object)
                    if rv:
                        self.resource_version = rv
        except ApiError as exc:
            if exc.status == 410:
                raise Gone(exc.message or "410 Gone") from exc
            raise
        if not events and self._clock() - started < MIN_WATCH_SECONDS:
            raise WatchError("the server closed the watch at once without an event")
