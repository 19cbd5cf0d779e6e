"""The cluster, as kubectl finds it (I/O): kubeconfig, context, namespace, and the few calls
the commands make, through :class:`taskflow.engine.kube.Kube` (no second client)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import yaml

from taskflow.api import task as api
from taskflow.ctl._model import TaskView, decode_task
from taskflow.engine.kube import ApiError, Kube, connect, default_kubeconfig
from taskflow.engine.watch import (
    Gone,
    WatchError,
    WatchEvent,
    decode_list_page,
    decode_watch_line,
    resource_version_of,
)

MERGE_PATCH = "application/merge-patch+json"
#: a watch asks the server to end it after this long (then it is resumed), and gives up on a
#: connection silent for longer than that plus a margin
WATCH_SECONDS = 290
WATCH_READ_TIMEOUT = WATCH_SECONDS + 30.0

_json = msgspec.json.Encoder()


class CtlError(Exception):
    """A failure to tell the user in one line (``error: ...``), exit status 1."""


@dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str


def context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    """The namespace of the kubeconfig context in use (kubectl's default namespace)."""
    path = kubeconfig or default_kubeconfig()
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None  # connect() reports an unreadable kubeconfig
    if not isinstance(cfg, dict):
        return None
    name = context or cfg.get("current-context")
    for ctx in cfg.get("contexts") or []:
        if isinstance(ctx, dict) and ctx.get("name") == name:
            ns = (ctx.get("context") or {}).get("namespace")
            return str(ns) if ns else None
    return None


def resolve(kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
    """Where to connect, or a CtlError saying clearly that there is nowhere."""
    path = kubeconfig or default_kubeconfig()
    if path is not None and not os.path.isfile(path):
        raise CtlError(f"no kubeconfig at {path}")
    if path is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise CtlError("no cluster: no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a pod")
    ns = namespace or context_namespace(kubeconfig, context) or "default"
    return Target(kubeconfig, context, ns)


async def open_cluster(target: Target) -> Kube:
    try:
        return await connect(kubeconfig=target.kubeconfig, context=target.context, pool_size=8)
    except Exception as exc:  # kubernetes-asyncio raises ConfigException, OSError, TypeError...
        raise CtlError(f"cannot load the cluster configuration: {exc}") from None


def tasks_path(namespace: str | None) -> str:
    base = f"/apis/{api.GROUP}/{api.VERSION}"
    return f"{base}/namespaces/{namespace}/{api.PLURAL}" if namespace else f"{base}/{api.PLURAL}"


def explain(exc: BaseException, *, host: str = "", what: str = "") -> str:
    """One line for a failed call: which object, and what the server (or network) said."""
    if isinstance(exc, ApiError):
        if exc.status == 404 and exc.reason == "NotFound":
            return f"{what} not found" if what else exc.message or "not found"
        if exc.status == 404:  # no Status body: the resource itself is unknown
            return (
                f"the server does not serve {api.PLURAL}.{api.GROUP} "
                "(is the CRD installed? `taskflow crd | kubectl apply -f -`)"
            )
        if exc.status == 401:
            return f"unauthorized: the credentials were refused ({exc.message or exc.reason})"
        if exc.status == 403:
            return f"forbidden: {exc.message or exc.reason}"
        return f"{exc.message or exc.reason or 'HTTP ' + str(exc.status)}"
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        detail = str(exc) or type(exc).__name__
        return f"cannot reach the cluster{' at ' + host if host else ''}: {detail}"
    return f"{type(exc).__name__}: {exc}"


class Client:
    """The calls of the people's commands, each failing with a :class:`CtlError`."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def _fail(self, exc: BaseException, what: str = "") -> CtlError:
        return CtlError(explain(exc, host=self.kube.host, what=what))

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        query: dict[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        try:
            data = await self.kube.request(
                method,
                path,
                query=query,
                body=None if body is None else _json.encode(body),
                content_type=content_type,
            )
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._fail(exc, what) from None
        return msgspec.json.decode(data)

    def task_what(self, name: str) -> str:
        return f'task "{name}" in namespace "{self.namespace}"'

    async def get_task(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self.call(
            "GET", f"{tasks_path(self.namespace)}/{name}", what=self.task_what(name)
        )
        return obj

    async def create_task(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest.get("metadata") or {}
        name = meta.get("name") or (meta.get("generateName", "") + "*")
        obj: dict[str, Any] = await self.call(
            "POST", tasks_path(self.namespace), body=manifest, what=self.task_what(name)
        )
        return obj

    async def cancel_task(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self.call(
            "PATCH",
            f"{tasks_path(self.namespace)}/{name}",
            body={"spec": {"cancel": True}},
            content_type=MERGE_PATCH,
            what=self.task_what(name),
        )
        return obj

    async def events_of(self, uid: str) -> list[dict[str, Any]]:
        data = await self.call(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/events",
            query={"fieldSelector": f"involvedObject.uid={uid}"},
        )
        items: list[dict[str, Any]] = data.get("items") or []
        return items

    async def watch_tasks(
        self, name: str | None = None, *, all_namespaces: bool = False
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The Tasks now (``ADDED`` each, then one ``SYNCED``), then every change (``ADDED``,
        ``MODIFIED``, ``DELETED``) for as long as the caller iterates. A watch the server
        ends is resumed from the last resourceVersion; an expired one (410) starts over with
        a new LIST (its objects come again as ``ADDED``). The wire format is the operator's
        (:mod:`taskflow.engine.watch`)."""
        path = tasks_path(None if all_namespaces else self.namespace)
        query: dict[str, str | int] = {}
        if name is not None:
            query["fieldSelector"] = f"metadata.name={name}"
        while True:
            listed = decode_list_page(await self._get(path, query))
            items = listed.items or []
            if name is not None and not items:
                raise CtlError(f"{self.task_what(name)} not found")
            for item in items:
                yield "ADDED", msgspec.json.decode(item)
            yield "SYNCED", {}  # the LIST is complete: what follows are changes
            rv = listed.metadata.resourceVersion
            try:
                while True:
                    async with aclosing(self._watch(path, query, rv)) as events:
                        async for event in events:
                            rv = resource_version_of(event.object) or rv
                            if event.type != "BOOKMARK":
                                yield event.type, msgspec.json.decode(event.object)
            except Gone:
                continue  # expired: LIST again

    async def _get(self, path: str, query: dict[str, str | int]) -> bytes:
        try:
            return await self.kube.request("GET", path, query=query)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._fail(exc) from None

    async def _watch(
        self, path: str, query: dict[str, str | int], rv: str
    ) -> AsyncGenerator[WatchEvent, None]:
        """One WATCH from ``rv`` until the server ends it, bookmarks included; Gone on a 410,
        CtlError on any other failure."""
        watch_query = {
            **query,
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": WATCH_SECONDS,
        }
        try:
            async with self.kube.stream(
                path, query=watch_query, read_timeout=WATCH_READ_TIMEOUT
            ) as body:
                async for line in body:
                    if not line.strip():
                        continue
                    yield decode_watch_line(line)
        except WatchError as exc:
            raise CtlError(f"watch failed: {exc.message}") from None
        except ApiError as exc:
            if exc.status == 410:
                raise Gone(exc.message or "410 Gone") from None
            raise self._fail(exc) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._fail(exc) from None

    async def task_changes(self, name: str) -> AsyncIterator[TaskView]:
        """Task ``name`` now and after every change; CtlError when it does not exist or is
        deleted meanwhile."""
        async for kind, obj in self.watch_tasks(name):
            if kind == "DELETED":
                raise CtlError(f"task/{name} was deleted")
            if kind != "SYNCED":
                yield _decode(obj)

    async def first_task(self, name: str) -> TaskView:
        return _decode(await self.get_task(name))


def _decode(obj: dict[str, Any]) -> TaskView:
    try:
        return decode_task(obj)
    except ValueError as exc:
        raise CtlError(str(exc)) from None
