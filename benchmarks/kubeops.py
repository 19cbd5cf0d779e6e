"""The bench's own API calls: its namespace, the objects it creates, polling and watching
them. Every loop is bounded in count and time; everything goes to the kubeconfig's server
(the harness's: 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from taskflow.api.crd import build_crd
from taskflow.engine.kube import ApiError, Kube

TASKS = "/apis/api.practice.com/v1alpha1/namespaces/{ns}/tasks"
PODS = "/api/v1/namespaces/{ns}/pods"
IMAGE = "busybox:1.28"  # the harness's local stand-in, on the node already
# Pods pinned to a node label nothing has: scheduled never, so no kubelet runs them (the
# control-plane tier's behaviour, on whichever cluster is up).
NO_NODE = {"taskflow.bench/kubelet": "none"}
CREATE_CONCURRENCY = 16  # requests in flight while creating (kubectl-like, not a flood)


class _Meta(msgspec.Struct):
    name: str
    resourceVersion: str = ""
    labels: dict[str, str] = {}


class _Phase(msgspec.Struct):
    phase: str = ""


class _PodItem(msgspec.Struct):
    metadata: _Meta
    status: _Phase = msgspec.field(default_factory=_Phase)


class _TaskStatus(msgspec.Struct):
    status: str = ""
    podName: str = ""


class _TaskItem(msgspec.Struct):
    metadata: _Meta
    status: _TaskStatus | None = None


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""
    # "continue" is a keyword: pages are fetched via the raw dict key instead.


class _PodList(msgspec.Struct):
    items: list[_PodItem]
    metadata: dict[str, Any] = {}


class _TaskList(msgspec.Struct):
    items: list[_TaskItem]
    metadata: dict[str, Any] = {}


class _Event(msgspec.Struct):
    type: str
    object: _PodItem


def raw_pod(name: str, *, pinned: bool) -> dict[str, Any]:
    """One busybox container that exits at once: what a one-step Task's pod runs."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "step", "image": IMAGE, "command": ["true"]}],
    }
    if pinned:
        spec["nodeSelector"] = NO_NODE
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def one_step_task(name: str, *, pinned: bool) -> dict[str, Any]:
    # the kubelet executor: one container, the same pod the raw client creates
    spec: dict[str, Any] = {
        "executor": "kubelet",
        "steps": [{"name": "step", "image": IMAGE, "command": ["true"]}],
    }
    if pinned:
        spec["podTemplate"] = {"nodeSelector": NO_NODE}
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": spec,
    }


async def ensure_crd(kube: Kube) -> None:
    """Install the Task CRD if the cluster lacks it (left installed: the cluster is shared)."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    try:
        await kube.request("POST", path, body=msgspec.json.encode(build_crd()))
    except ApiError as exc:
        if exc.status != 409:
            raise

    async def served() -> bool:
        try:
            await kube.request("GET", "/apis/api.practice.com/v1alpha1/tasks", query={"limit": 1})
        except ApiError:
            return False
        return True

    await wait_until(served, "the Task CRD is served", within=60)


@asynccontextmanager
async def namespace(kube: Kube, prefix: str, *, wait_gone: float = 0) -> AsyncIterator[str]:
    """A fresh namespace, deleted afterwards (the namespace controller removes its objects;
    nothing here carries a finalizer, so that needs no operator); ``wait_gone`` seconds at
    most for it to be gone, so that its clean-up does not load the next measurement."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await kube.request("POST", "/api/v1/namespaces", body=msgspec.json.encode(body))
    try:
        await wait_populated(kube, name)
        yield name
    finally:
        await kube.request("DELETE", f"/api/v1/namespaces/{name}")
        if wait_gone > 0:
            await _gone(kube, f"/api/v1/namespaces/{name}", wait_gone)


async def _gone(kube: Kube, path: str, within: float) -> None:
    async def gone() -> bool:
        try:
            await kube.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return True
            raise
        return False

    await wait_until(gone, f"{path} deleted", within=within)


async def wait_populated(kube: Kube, ns: str) -> None:
    """Wait for what controllers add to a new namespace: the ``default`` ServiceAccount
    (pods are refused without it) and the ``kube-root-ca.crt`` ConfigMap (the kubelet
    retries, with back-off, a pod's token volume until it exists): else whichever part runs
    first in the namespace pays for it."""
    paths = [
        f"/api/v1/namespaces/{ns}/serviceaccounts/default",
        f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt",
    ]

    async def populated() -> bool:
        try:
            for path in paths:
                await kube.request("GET", path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return False
        return True

    await wait_until(populated, f"namespace {ns} populated", within=60, interval=0.2)


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, *, within: float, interval: float = 0.5
) -> float:
    """Poll ``check`` until true; return the seconds it took. TimeoutError after ``within``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise TimeoutError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


async def create_all(
    kube: Kube, path: str, docs: Sequence[dict[str, Any]]
) -> list[tuple[float, float]]:
    """POST every doc to ``path``; see :func:`send_all`."""
    return await send_all(kube, "POST", [(path, doc) for doc in docs])


async def send_all(
    kube: Kube,
    method: str,
    requests: Sequence[tuple[str, dict[str, Any]]],
    content_type: str = "application/json",
) -> list[tuple[float, float]]:
    """Send every (path, body), :data:`CREATE_CONCURRENCY` at a time; per request (sent,
    answered) in ``time.monotonic()`` seconds, in the order given."""
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)
    times: list[tuple[float, float]] = [(0.0, 0.0)] * len(requests)

    async def one(i: int, path: str, doc: dict[str, Any]) -> None:
        body = msgspec.json.encode(doc)
        async with sem:
            sent = time.monotonic()
            await kube.request(method, path, body=body, content_type=content_type)
            times[i] = (sent, time.monotonic())

    await asyncio.gather(*(one(i, p, d) for i, (p, d) in enumerate(requests)))
    return times


async def _list(kube: Kube, path: str, kind: type[Any]) -> list[Any]:
    items: list[Any] = []
    query: dict[str, str | int] = {"limit": 500}
    for _ in range(1000):  # 500k objects: far past anything the bench creates
        page = msgspec.json.decode(await kube.request("GET", path, query=query), type=kind)
        items += page.items
        token = page.metadata.get("continue")
        if not token:
            return items
        query["continue"] = token
    raise RuntimeError(f"{path}: more pages than the bench ever creates")


async def pod_phases(kube: Kube, ns: str) -> dict[str, str]:
    pods: list[_PodItem] = await _list(kube, PODS.format(ns=ns), _PodList)
    return {p.metadata.name: p.status.phase for p in pods}


async def task_states(kube: Kube, ns: str) -> dict[str, str]:
    """Task name -> status.status ("" before the operator wrote one)."""
    tasks: list[_TaskItem] = await _list(kube, TASKS.format(ns=ns), _TaskList)
    return {t.metadata.name: t.status.status if t.status else "" for t in tasks}


def pod_key(pod: _PodItem) -> str:
    """A pod's name (the raw client's and the operator's pods)."""
    return pod.metadata.name


async def pods_added(
    kube: Kube,
    ns: str,
    seen: dict[str, float],
    listening: asyncio.Event,
    *,
    within: float,
    key: Callable[[_PodItem], str] = pod_key,
) -> None:
    """Record in ``seen`` the local arrival time (monotonic) of each pod's ADDED event in
    ``ns``, under ``key(pod)``; sets ``listening`` once the watch stream is open; runs until
    cancelled or ``within`` (the server closes the watch then)."""
    listed = msgspec.json.decode(await kube.request("GET", PODS.format(ns=ns)), type=_PodList)
    for item in listed.items:
        seen.setdefault(key(item), time.monotonic())
    query: dict[str, str | int] = {
        "watch": "1",
        "resourceVersion": str(listed.metadata.get("resourceVersion", "")),
        "timeoutSeconds": int(within),
    }
    decoder = msgspec.json.Decoder(_Event)
    async with kube.stream(PODS.format(ns=ns), query=query, read_timeout=within) as body:
        listening.set()
        async for line in body:
            event = decoder.decode(line)
            if event.type == "ADDED":
                seen.setdefault(key(event.object), time.monotonic())


def finished_status(step: str, at: str) -> dict[str, Any]:
    """A pod status as a kubelet writes it when the pod's one container ``step`` exited 0
    (the bench writes it itself for pods no kubelet runs)."""
    terminated = {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}
    return {
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": step,
                    "image": IMAGE,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }


async def delete_pods(kube: Kube, ns: str, *, within: float) -> None:
    """Delete every pod of ``ns`` and wait until they are gone (the node is idle again)."""
    await kube.request("DELETE", PODS.format(ns=ns), query={"gracePeriodSeconds": 0})

    async def gone() -> bool:
        return not await pod_phases(kube, ns)

    await wait_until(gone, f"pods of {ns} deleted", within=within)


class _Container(msgspec.Struct):
    image: str = ""
    args: list[str] = []
    command: list[str] = []


class _PodSpec(msgspec.Struct):
    containers: list[_Container] = []


class _Template(msgspec.Struct):
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)


class _DeploySpec(msgspec.Struct):
    template: _Template = msgspec.field(default_factory=_Template)


class _NsMeta(msgspec.Struct):
    name: str
    namespace: str = ""


class _Deployment(msgspec.Struct):
    metadata: _NsMeta
    spec: _DeploySpec = msgspec.field(default_factory=_DeploySpec)


class _DeploymentList(msgspec.Struct):
    items: list[_Deployment]


class _Items(msgspec.Struct):
    items: list[msgspec.Raw] = []


async def node_count(kube: Kube) -> int:
    """Nodes the cluster has (0: the control-plane tier)."""
    return len(msgspec.json.decode(await kube.request("GET", "/api/v1/nodes"), type=_Items).items)


async def other_operators(kube: Kube) -> list[str]:
    """Deployments running a taskflow operator over all namespaces (no --namespace): they
    would reconcile the bench's Tasks too, so the report says so."""
    data = await kube.request("GET", "/apis/apps/v1/deployments")
    found = []
    for d in msgspec.json.decode(data, type=_DeploymentList).items:
        for c in d.spec.template.spec.containers:
            argv = [*c.command, *c.args]
            scoped = any(a in ("-n", "--namespace") or a.startswith("--namespace=") for a in argv)
            if "taskflow/operator" in c.image and not scoped:
                found.append(f"{d.metadata.namespace}/{d.metadata.name}")
    return found
