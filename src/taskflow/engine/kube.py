"""A thin raw HTTP layer over kubernetes-asyncio's configuration, auth and aiohttp session.

kubernetes-asyncio loads the kubeconfig (``--context``) or the in-cluster service account,
builds the TLS context and refreshes tokens; we send raw requests through its aiohttp
session and decode the bytes with msgspec ourselves (no OpenAPI model round trip).

Like client-go's REST client, :meth:`Kube.request` (not the long-running watch streams)

* takes a token from a client-side QPS/burst bucket before each request (``limiter``):
  the operator sets none when the API server does API Priority and Fairness
  (:meth:`Kube.probe_server`), whose queues are the server's own protection, else 50/100;
* retries an answer the server did not act on: ``429 Too Many Requests`` (API priority
  and fairness, max-in-flight) always, ``503`` only when it carries ``Retry-After``.
  It waits the ``Retry-After`` seconds (capped) or the backoff, whichever is longer, at
  most ``max_retries`` times, and counts each retry in
  ``rest_client_request_retries_total{code,verb}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
import anyio
import msgspec

from taskflow import __version__
from taskflow.engine import client_config
from taskflow.engine.ratelimit import ExponentialBackoff, TokenBucket
from taskflow.metrics import Metrics

log = logging.getLogger("taskflow.kube")

USER_AGENT = f"taskflow/{__version__}"
IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class _Status(msgspec.Struct):
    message: str = ""
    reason: str = ""
    code: int = 0


def _env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY/NO_PROXY give ``url``, as a trusting session would."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class ApiError(Exception):
    """A non-2xx answer from the API server (``status`` 0: no HTTP answer at all)."""

    def __init__(self, status: int, body: bytes = b"", *, method: str = "", path: str = ""):
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        self.reason = ""
        self.message = ""
        try:
            st = msgspec.json.decode(body, type=_Status)
            self.reason, self.message = st.reason, st.message
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.message = body[:500].decode("utf-8", "replace")
        super().__init__(f"{method} {path}: HTTP {status} {self.reason}: {self.message}".strip())


#: Headers an API server doing API Priority and Fairness sets on every answer it classified
#: (k8s.io/api/flowcontrol/v1: the UIDs of the FlowSchema and PriorityLevel matched).
APF_HEADERS = ("X-Kubernetes-PF-FlowSchema-UID", "X-Kubernetes-PF-PriorityLevel-UID")
#: Answered by every API server to any client (system:public-info-viewer), classified by APF.
APF_PROBE_PATH = "/version"


@dataclass(frozen=True)
class ServerFacts:
    """What the operator reads from the API server once, at start (None: not known)."""

    apf: bool | None = None
    version: tuple[int, int] | None = None  # (major, minor)


def server_version(body: bytes) -> tuple[int, int] | None:
    """``(1, 34)`` from a ``/version`` answer (``{"major": "1", "minor": "34+"}``: some
    distributions append ``+``); None when the body says no such thing."""
    try:
        doc = json.loads(body)
        major = re.match(r"\d+", str(doc["major"]))
        minor = re.match(r"\d+", str(doc["minor"]))
    except (ValueError, TypeError, KeyError):
        return None
    if major is None or minor is None:
        return None
    return int(major[0]), int(minor[0])


def carries_apf(headers: Mapping[str, str]) -> bool:
    """Whether an answer's headers say API Priority and Fairness classified the request."""
    names = {name.lower() for name in headers}
    return all(h.lower() in names for h in APF_HEADERS)


#: Retries of one request the server refused for now (client-go's default is 10; each
#: waits up to MAX_RETRY_AFTER, so 5 bound a request to a few minutes at worst).
MAX_RETRIES = 5
#: The longest ``Retry-After`` obeyed (a server asking for more is asked again sooner).
MAX_RETRY_AFTER = 30.0
#: Wait before retrying a 429 that names no ``Retry-After``.
DEFAULT_RETRY_AFTER = 1.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(int(text)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    status: int,
    retry_after: float | None,
    attempt: int,
    backoff: ExponentialBackoff,
    *,
    max_retries: int = MAX_RETRIES,
    cap: float = MAX_RETRY_AFTER,
) -> float | None:
    """Seconds to wait before sending again after the ``attempt``-th answer ``status``,
    or None when it is not to be retried (pure).

    Only answers the server did not act on are retried, so a POST is safe to repeat:
    429 (with or without ``Retry-After``) and 503 with ``Retry-After``.
    """
    if attempt > max_retries:
        return None
    if status == 429:
        wanted = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
    elif status == 503 and retry_after is not None:
        wanted = retry_after
    else:
        return None
    return min(cap, max(wanted, backoff.delay(attempt)))


class StreamClient(Protocol):
    """The part of :class:`Kube` a reflector uses (LIST pages, WATCH streams), so that its
    unit tests can fake it. Kube derives from it, so mypy checks every change to Kube's
    signatures against what the reflector calls: the two cannot drift apart."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        request_timeout: float = 30.0,
    ) -> bytes: ...

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        read_timeout: float,
        connect_timeout: float = 15.0,
    ) -> AbstractAsyncContextManager[AsyncIterable[bytes]]: ...


class Kube(StreamClient):
    """Raw JSON requests to the API server of one kubernetes-asyncio ``ApiClient``.

    ``limiter`` paces :meth:`request` (unlimited by default; the operator sets its
    ``--qps``/``--burst``), ``metrics`` counts retries and the time spent waiting for a
    token.
    """

    def __init__(
        self,
        api_client: Any,
        loader: Any = None,
        *,
        limiter: TokenBucket | None = None,
        metrics: Metrics | None = None,
        backoff: ExponentialBackoff | None = None,
        max_retries: int = MAX_RETRIES,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.api_client = api_client
        self._loader = loader  # kubeconfig loader (refreshes exec/gcp credentials)
        self.limiter = limiter if limiter is not None else TokenBucket(0, 1)
        self.metrics = metrics
        self.backoff = backoff if backoff is not None else ExponentialBackoff(0.5, MAX_RETRY_AFTER)
        self.max_retries = max_retries
        self._sleep = sleep
        cfg = api_client.configuration
        self.host: str = str(cfg.host).rstrip("/")
        # kubernetes-asyncio's session trusts the environment, so aiohttp looks for a ~/.netrc
        # in a thread for every request sent without `auth=` (ours carry a header or a client
        # certificate): a third of the operator's CPU at 100 Tasks/s. Ours shares its
        # connector (TLS, pool) without that; an HTTPS_PROXY is read once, below.
        shared = api_client.rest_client.pool_manager
        self._session = aiohttp.ClientSession(
            connector=shared.connector, connector_owner=False, read_bufsize=2**21
        )
        self._server_hostname: str | None = cfg.tls_server_name
        self._proxy: str | None = cfg.proxy or _env_proxy(self.host)
        self._proxy_headers: Any = cfg.proxy_headers

    async def close(self) -> None:
        await self._session.close()
        await self.api_client.close()

    async def refresh_credentials(self, interval: float = 60.0) -> None:
        """Keep exec-plugin / gcp kubeconfig tokens fresh (returns at once for other kinds of
        credentials; in-cluster tokens are re-read by kubernetes-asyncio on use)."""
        kconfig = client_config.load()[0]

        if self._loader is None:
            return
        while True:
            try:
                await kconfig.refresh_token(
                    self._loader, self.api_client.configuration, interval=interval
                )
                return  # nothing to refresh for these credentials
            except Exception as exc:
                log.warning("could not refresh the kubeconfig credentials: %s", exc)
                await anyio.sleep(interval)

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        await self.api_client.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def _url(self, path: str, query: Mapping[str, str | int] | None) -> str:
        url = self.host + path
        if query:
            url += "?" + urlencode({k: str(v) for k, v in query.items()})
        return url

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self._server_hostname:
            kw["server_hostname"] = self._server_hostname
        if self._proxy:
            kw["proxy"] = self._proxy
            if self._proxy_headers:
                kw["proxy_headers"] = self._proxy_headers
        return kw

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        request_timeout: float = 30.0,
        rate_limited: bool = True,
    ) -> bytes:
        """Send a request; return the body of a 2xx answer, raise :class:`ApiError` else.

        ``request_timeout`` bounds each attempt; 429/503 are retried (see the module
        docstring). ``rate_limited=False`` skips the QPS bucket (leader election: a lease
        renewal must never queue behind a burst of reconciles).
        """
        attempt = 0
        while True:
            attempt += 1
            if rate_limited:
                await self._take_token(method)
            headers = await self._headers(content_type if body is not None else None)
            async with self._session.request(
                method,
                self._url(path, query),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=request_timeout),
                **self._kwargs(),
            ) as resp:
                data = await resp.read()
                if 200 <= resp.status < 300:
                    return data
                delay = retry_delay(
                    resp.status,
                    parse_retry_after(resp.headers.get("Retry-After")),
                    attempt,
                    self.backoff,
                    max_retries=self.max_retries,
                )
                if delay is None:
                    raise ApiError(resp.status, data, method=method, path=path)
            if self.metrics is not None:
                self.metrics.api_retries.labels(str(resp.status), method).inc()
            log.info("%s %s: HTTP %d, retry %d in %.2fs", method, path, resp.status, attempt, delay)
            await self._sleep(delay)

    async def probe_server(self, seconds: float = 5.0) -> ServerFacts:
        """One GET of ``/version`` (no token, no retry) bounded by ``seconds``: whether the
        API server does API Priority and Fairness (any HTTP answer's headers) and its
        version (a 200's body). Nothing is known when no answer came."""
        try:
            headers = await self._headers(None)
            async with self._session.get(
                self._url(APF_PROBE_PATH, None),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
                **self._kwargs(),
            ) as resp:
                body = await resp.read()
                version = server_version(body) if resp.status == 200 else None
                return ServerFacts(apf=carries_apf(resp.headers), version=version)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("could not ask the API server for its version and APF: %s", exc)
            return ServerFacts()

    async def _take_token(self, method: str) -> None:
        wait = self.limiter.reserve()
        if self.metrics is not None:
            self.metrics.rate_limiter_wait.labels(method).observe(wait)
        if wait > 0:
            await self._sleep(wait)

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        read_timeout: float | None,
        connect_timeout: float = 15.0,
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """GET a streaming response (a watch, a followed pod log); yields its body reader
        (iterate it line by line, or ``iter_any()`` for raw chunks). ``read_timeout`` None:
        no idle limit (a followed log may be silent for hours; the caller bounds it)."""
        headers = await self._headers(None)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        async with self._session.get(
            self._url(path, query), headers=headers, timeout=timeout, **self._kwargs()
        ) as resp:
            if resp.status != 200:
                raise ApiError(resp.status, await resp.read(), method="GET", path=path)
            yield resp.content


async def connect(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    pool_size: int = 100,
) -> Kube:
    """Build a :class:`Kube` from a kubeconfig (``--kubeconfig``/``$KUBECONFIG``/~/.kube/config,
    ``--context``) or, failing that inside a pod, from the in-cluster service account."""
    kconfig, Configuration, ApiClient = client_config.load()
    cfg = Configuration()
    path = kubeconfig or _default_kubeconfig()
    loader = None
    if path is not None:
        loader = await kconfig.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    else:
        kconfig.load_incluster_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return Kube(ApiClient(configuration=cfg), loader)


def _default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    home = os.path.expanduser("~/.kube/config")
    if os.path.exists(home):
        return home
    return None


def in_cluster_namespace(default: str = "default") -> str:
    """The namespace of the pod we run in (service account file), else ``default``."""
    try:
        with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as f:
            ns = f.read().strip()
    except OSError:
        return default
    return ns or default


default_kubeconfig = _default_kubeconfig  # public: kubectl taskflow resolves it the same way
