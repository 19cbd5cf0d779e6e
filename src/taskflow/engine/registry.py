"""Reading images' ENTRYPOINT/CMD from their registries (OCI distribution API), for agent
steps without ``command``. The decisions are :mod:`taskflow.oci`'s; this is the HTTP.

* ``GET /v2/<repo>/manifests/<tag|digest>`` accepting OCI and Docker indexes and manifests;
  an index is followed to each linux platform's manifest (only the nodeSelector's
  ``kubernetes.io/arch`` when it names one); then ``GET /v2/<repo>/blobs/<config digest>``.
* Auth: a 401's ``WWW-Authenticate`` is answered: ``Basic`` with the credentials, ``Bearer``
  with a token from its realm (``service``, ``scope=repository:<repo>:pull``; the
  credentials, if any, as Basic there). Several credentials are tried in order, as the
  kubelet does, until one is not refused.
* Where: ``--registry-mirror HOST=URL`` first; else https, plain http for loopback hosts
  (as containerd does).
* Failures: connection errors, timeouts, 5xx and 429 are retried ``attempts`` times with
  backoff; anything else (401, 403, 404, an unreadable manifest) is final at once. Either
  way the answer is a :class:`~taskflow.oci.Resolved` whose ``error`` carries the
  registry's own words.
* Caches: config blobs by digest (immutable, content-checked, shared by everyone: a config
  digest is only learned from a manifest fetched with the Task's own credentials);
  manifests keyed by the credentials used too, so that a Task without a pull secret never
  gets an answer fetched with another Task's; a tag's manifest for ``tag_ttl`` seconds, a
  digest's for as long as it stays in the bounded cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlencode

import aiohttp
import anyio
import msgspec

from taskflow import __version__
from taskflow.oci import (
    ACCEPT,
    Credential,
    ImageCommand,
    ImageManifest,
    IndexEntry,
    InvalidReference,
    ManifestError,
    Reference,
    Resolved,
    is_loopback_host,
    parse_challenge,
    parse_config,
    parse_manifest,
    parse_reference,
    select_platforms,
)

log = logging.getLogger("taskflow.registry")

USER_AGENT: Final = f"taskflow/{__version__}"
#: entries kept per cache (LRU); an image config is a few KiB
CACHE_SIZE: Final = 1024


class RegistryConfig(msgspec.Struct, frozen=True, kw_only=True):
    #: registry host (``docker.io``, ``127.0.0.1:35000``) -> base URL with scheme
    mirrors: dict[str, str] = {}
    connect_timeout: float = 5.0
    #: bounds each request (connect, headers, body)
    request_timeout: float = 20.0
    #: tries of a request that failed transiently (connect, timeout, 5xx, 429)
    attempts: int = 3
    #: first wait between tries, doubled each time
    backoff: float = 0.5
    max_concurrency: int = 8
    #: seconds a tag's manifest is reused (a tag can move; a digest cannot)
    tag_ttl: float = 30.0
    #: bounds one image's whole lookup (every request, retry and credential): a reconcile
    #: worker waits for it
    lookup_timeout: float = 60.0


class LookupFailed(Exception):
    """One request's final failure; ``str()`` is what the Task's status says."""

    def __init__(self, message: str, *, status: int = 0, transient: bool = False) -> None:
        super().__init__(message)
        #: the HTTP status that ended it (0: none)
        self.status = status
        self.transient = transient


class _Errors(msgspec.Struct):
    class _E(msgspec.Struct):
        code: str = ""
        message: str = ""

    errors: list[_E] = []


def _registry_words(status: int, reason: str, body: bytes) -> str:
    """``401 Unauthorized: UNAUTHORIZED: authentication required`` (the distribution API's
    ``errors`` list when the body has one, else the start of the body)."""
    head = f"{status} {reason}".strip()
    try:
        errs = msgspec.json.decode(body, type=_Errors).errors
        words = "; ".join(f"{e.code}: {e.message}" if e.code else e.message for e in errs)
    except (msgspec.DecodeError, msgspec.ValidationError):
        words = body[:200].decode("utf-8", "replace").strip()
    return f"{head}: {words}" if words else head


class _Token(msgspec.Struct):
    token: str = ""
    access_token: str = ""


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_Manifest = list[IndexEntry] | ImageManifest


class _Repo:
    """One image's repository as seen with one credential: its URL and the
    ``Authorization`` the registry accepted (reused for its other requests)."""

    def __init__(self, base: str, ref: Reference, cred: Credential | None) -> None:
        self.base = base
        self.ref = ref
        self.cred = cred
        self.authorization: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        who = "" if self.cred is None else hashlib.sha256(self.cred.basic().encode()).hexdigest()
        return (self.base, self.ref.repository, who)


class RegistryClient:
    """Resolves images to their ENTRYPOINT/CMD per platform; one per operator."""

    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.config = config or RegistryConfig()
        self._clock = clock
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrency)
        self._configs: _Lru[str, tuple[str, ImageCommand]] = _Lru()
        self._manifests: _Lru[tuple[Any, ...], tuple[float, _Manifest]] = _Lru()
        #: HTTP requests sent (tests count cache hits with it)
        self.requests = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def base_url(self, ref: Reference) -> str:
        mirror = self.config.mirrors.get(ref.registry)
        if mirror is not None:
            return mirror.rstrip("/")
        scheme = "http" if is_loopback_host(ref.registry) else "https"
        return f"{scheme}://{ref.api_host}"

    async def resolve(
        self, image: str, credentials: list[Credential], arch: str | None = None
    ) -> Resolved:
        """``image``'s ENTRYPOINT/CMD per linux platform (only ``arch`` if given), or the
        failure, trying ``credentials`` in order (none: anonymous)."""
        try:
            ref = parse_reference(image)
        except InvalidReference as e:
            return Resolved(error=str(e))
        limit = self.config.lookup_timeout
        with anyio.move_on_after(limit):
            return await self._resolve(image, ref, credentials, arch)
        return Resolved(error=f"image {image}: no complete answer within {limit:g}s")

    async def _resolve(
        self, image: str, ref: Reference, credentials: list[Credential], arch: str | None
    ) -> Resolved:
        refused: LookupFailed | None = None
        tries: list[Credential | None] = [*credentials] or [None]
        for cred in tries:
            repo = _Repo(self.base_url(ref), ref, cred)
            try:
                return Resolved(platforms=await self._platforms(repo, arch))
            except LookupFailed as e:
                if e.status not in (401, 403):  # refused: the next credential may do
                    return Resolved(error=f"image {image}: {e}")
                refused = refused or e
        return Resolved(error=f"image {image}: {refused}")

    async def _platforms(self, repo: _Repo, arch: str | None) -> dict[str, ImageCommand]:
        top = await self._manifest(repo, repo.ref.reference)
        if isinstance(top, ImageManifest):
            platform, command = await self._config(repo, top.config_digest)
            return {platform or "linux": command}
        chosen = select_platforms(top, arch)
        if not chosen:
            have = ", ".join(sorted({e.platform for e in top})) or "none"
            want = f"linux/{arch}" if arch else "linux"
            raise LookupFailed(f"the index has no {want} image (it has: {have})")
        out: dict[str, ImageCommand] = {}
        for platform, digest in sorted(chosen.items()):
            m = await self._manifest(repo, digest)
            if not isinstance(m, ImageManifest):
                raise LookupFailed(f"{digest} ({platform}) is an index inside an index")
            out[platform] = (await self._config(repo, m.config_digest))[1]
        return out

    async def _manifest(self, repo: _Repo, reference: str) -> _Manifest:
        key = (*repo.key, reference)
        now = self._clock()
        hit = self._manifests.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        body, ctype = await self._get(repo, f"manifests/{reference}", ACCEPT)
        if reference.startswith("sha256:"):
            _check_digest(reference, body)
        try:
            manifest = parse_manifest(body, ctype)
        except ManifestError as e:
            raise LookupFailed(str(e)) from None
        immutable = reference.startswith("sha256:")
        self._manifests.put(
            key, (float("inf") if immutable else now + self.config.tag_ttl, manifest)
        )
        return manifest

    async def _config(self, repo: _Repo, digest: str) -> tuple[str, ImageCommand]:
        hit = self._configs.get(digest)
        if hit is not None:
            return hit
        body, _ = await self._get(repo, f"blobs/{digest}", "*/*")
        _check_digest(digest, body)
        try:
            found = parse_config(body)
        except ManifestError as e:
            raise LookupFailed(str(e)) from None
        self._configs.put(digest, found)
        return found

    # --- HTTP ----------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(
                    total=self.config.request_timeout, sock_connect=self.config.connect_timeout
                ),
            )
        return self._session

    async def _get(self, repo: _Repo, tail: str, accept: str) -> tuple[bytes, str]:
        """GET ``<base>/v2/<repo>/<tail>`` with retries of transient failures."""
        url = f"{repo.base}/v2/{repo.ref.repository}/{tail}"
        delay = self.config.backoff
        for attempt in range(1, self.config.attempts + 1):
            try:
                return await self._get_once(repo, url, accept)
            except LookupFailed as e:
                if not e.transient or attempt == self.config.attempts:
                    raise
                log.info("GET %s: %s; try %d in %.1fs", url, e, attempt + 1, delay)
            await self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def _send(self, url: str, headers: Mapping[str, str]) -> tuple[int, str, bytes, Any]:
        async with self._limiter:
            self.requests += 1
            try:
                async with self._client().get(url, headers=dict(headers)) as resp:
                    body = await resp.read()
                    return resp.status, resp.reason or "", body, resp.headers
            except TimeoutError:
                raise LookupFailed(
                    f"GET {url}: no answer within {self.config.request_timeout:g}s",
                    transient=True,
                ) from None
            except aiohttp.ClientError as e:
                raise LookupFailed(f"GET {url}: {e}", transient=True) from None

    async def _get_once(self, repo: _Repo, url: str, accept: str) -> tuple[bytes, str]:
        headers = {"Accept": accept}
        if repo.authorization is not None:
            headers["Authorization"] = repo.authorization
        status, reason, body, resp_headers = await self._send(url, headers)
        if status == 401 and repo.authorization is None:
            challenge = _header(resp_headers, "WWW-Authenticate")
            repo.authorization = await self._authorize(repo, challenge, status, reason, body)
            if repo.authorization is not None:
                headers["Authorization"] = repo.authorization
                status, reason, body, resp_headers = await self._send(url, headers)
        if 200 <= status < 300:
            return body, _header(resp_headers, "Content-Type")
        transient = status >= 500 or status == 429
        raise LookupFailed(
            f"GET {url}: {_registry_words(status, reason, body)}",
            status=status,
            transient=transient,
        )

    async def _authorize(
        self, repo: _Repo, header: str, status: int, reason: str, body: bytes
    ) -> str | None:
        """The ``Authorization`` answering a 401's challenge, or None (none we can answer:
        the 401 stands)."""
        for ch in parse_challenge(header):
            if ch.scheme == "basic" and repo.cred is not None:
                return repo.cred.basic()
            if ch.scheme == "bearer" and ch.params.get("realm"):
                return "Bearer " + await self._token(repo, ch.params)
        return None

    async def _token(self, repo: _Repo, params: Mapping[str, str]) -> str:
        query = {"scope": f"repository:{repo.ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"]
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        headers = {} if repo.cred is None else {"Authorization": repo.cred.basic()}
        status, reason, body, _ = await self._send(url, headers)
        if not 200 <= status < 300:
            raise LookupFailed(
                f"token from {realm}: {_registry_words(status, reason, body)}",
                status=status,
                transient=status >= 500 or status == 429,
            )
        try:
            tok = msgspec.json.decode(body, type=_Token)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise LookupFailed(f"token from {realm}: unreadable answer") from None
        if not (tok.token or tok.access_token):
            raise LookupFailed(f"token from {realm}: no token in the answer")
        return tok.token or tok.access_token


def _header(headers: Any, name: str) -> str:
    return str(headers.get(name, "")) if headers is not None else ""


def _check_digest(digest: str, body: bytes) -> None:
    algo, _, want = digest.partition(":")
    if algo == "sha256" and hashlib.sha256(body).hexdigest() != want:
        raise LookupFailed(f"the content of {digest} does not match its digest")
