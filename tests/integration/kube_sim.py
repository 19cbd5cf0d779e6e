"""Shared helpers of the integration tests: a real kube-apiserver, no kubelet.

The tests play the kubelet by writing a pod's status through the ``pods/status`` subresource
with the admin kubeconfig (:func:`kubelet`), after binding the pod to a node that does not
exist (:func:`the_pod`) so that no real scheduler or kubelet touches it. :func:`operator`
runs the engine in-process. The ``admin`` and ``ns`` fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import yaml

from taskflow.api.crd import build_crd
from taskflow.engine.kube import ApiError, Kube, connect
from taskflow.engine.operator import Operator, OperatorConfig
from taskflow.labels import TASK_UID_LABEL
from taskflow.settings import Settings

T = TypeVar("T")
Obj = dict[str, Any]

TASKS = "/apis/api.practice.com/v1alpha1/namespaces/{ns}/tasks"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MERGE = "application/merge-patch+json"
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)

enc = msgspec.json.Encoder()


def dec(data: bytes) -> Obj:
    out = msgspec.json.decode(data)
    assert isinstance(out, dict)
    return out


async def install_crd(kube: Kube) -> None:
    """Create or update the Task CRD and wait until it is served."""
    crd = build_crd()
    name = crd["metadata"]["name"]
    try:
        await kube.request("POST", CRDS, body=enc.encode(crd))
    except ApiError as exc:
        if exc.status != 409:
            raise
        current = dec(await kube.request("GET", f"{CRDS}/{name}"))
        crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await kube.request("PUT", f"{CRDS}/{name}", body=enc.encode(crd))

    async def established() -> bool:
        obj = dec(await kube.request("GET", f"{CRDS}/{name}"))
        conds = (obj.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
            return False
        try:
            await kube.request("GET", "/apis/api.practice.com/v1alpha1/tasks", query={"limit": 1})
        except ApiError:
            return False
        return True

    await eventually(established, within=30)


# -- helpers --------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[T | bool | None] | T | bool | None],
    within: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll ``check`` (sync or async) until it returns something other than None/False."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last is not None and last is not False:
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {last!r})")
        await anyio.sleep(interval)


#: The tests play the kubelet of init-container pods: Tasks without spec.executor use the
#: kubelet executor here (the operator's default is the agent, which a test would have to
#: play through termination messages).
KUBELET = Settings(default_executor="kubelet")


@asynccontextmanager
async def operator(kubeconfig: str, namespace: str, **overrides: Any) -> AsyncIterator[Operator]:
    """Run an engine in-process until the block ends."""
    kube = await connect(kubeconfig=kubeconfig)
    cfg: dict[str, Any] = {
        "namespaces": (namespace,),
        "bind_address": "127.0.0.1:0",
        "qps": 0.0,
        "backoff_base": 0.01,
        "settings": KUBELET,
    }
    cfg.update(overrides)
    op = Operator(kube, OperatorConfig(**cfg))
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(op.run)
            yield op
            tg.cancel_scope.cancel()
    finally:
        await kube.close()


#: Keeps the pods away from any real kubelet (the full tier has one): the test is the
#: only writer of their status.
NO_NODE = {"taskflow.test/kubelet": "simulated-by-the-test"}
#: Prefix of the (non-existent) nodes pods are bound to. A fresh name per pod: PodGC deletes
#: pods bound to a missing node once it has been missing for 40 s.
SIMULATED_NODE = "taskflow-simulated-node"


def task_manifest(name: str, steps: list[Obj], **spec: Any) -> Obj:
    """A Task whose pod no real kubelet runs; ``spec`` adds fields (timeout, retries, ...)."""
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"steps": steps, "podTemplate": {"nodeSelector": NO_NODE}, **spec},
    }


def steps(*names: str) -> list[Obj]:
    return [{"name": n, "image": "busybox:1.36", "command": ["true"]} for n in names]


async def create_task(admin: Kube, ns: str, name: str, step_list: list[Obj], **spec: Any) -> Obj:
    data = await admin.request(
        "POST", TASKS.format(ns=ns), body=enc.encode(task_manifest(name, step_list, **spec))
    )
    return dec(data)


async def get_task(admin: Kube, ns: str, name: str) -> Obj:
    return dec(await admin.request("GET", f"{TASKS.format(ns=ns)}/{name}"))


async def task_status(admin: Kube, ns: str, name: str) -> Obj:
    return (await get_task(admin, ns, name)).get("status") or {}


async def pods_of(admin: Kube, ns: str, uid: str) -> list[Obj]:
    data = await admin.request(
        "GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"{TASK_UID_LABEL}={uid}"}
    )
    items: list[Obj] = dec(data)["items"]
    return items


async def the_pod(admin: Kube, ns: str, uid: str) -> Obj:
    """Wait for the Task's only pod, then bind it to a node that does not exist: neither a
    scheduler nor a kubelet (the full tier has both) touches it again; the test is its
    kubelet."""

    async def one() -> Obj | None:
        pods = await pods_of(admin, ns, uid)
        assert len(pods) <= 1, "more than one pod for a Task"
        return pods[0] if pods else None

    pod: Obj = await eventually(one)
    await bind(admin, pod)
    return pod


async def bind(admin: Kube, pod: Obj) -> None:
    """Bind ``pod`` to a node that does not exist (see :func:`the_pod`)."""
    ns = pod["metadata"]["namespace"]
    if not pod["spec"].get("nodeName"):
        name = pod["metadata"]["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {
                "apiVersion": "v1",
                "kind": "Node",
                "name": f"{SIMULATED_NODE}-{uuid.uuid4().hex[:8]}",
            },
        }
        await admin.request(
            "POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", body=enc.encode(binding)
        )


async def events_of(admin: Kube, ns: str, uid: str) -> list[Obj]:
    data = await admin.request(
        "GET",
        f"/api/v1/namespaces/{ns}/events",
        query={"fieldSelector": f"involvedObject.uid={uid}"},
    )
    items: list[Obj] = dec(data)["items"]
    return items


async def status_is(admin: Kube, ns: str, name: str, **want: Any) -> Obj:
    seen: list[Obj] = [{}]

    async def check() -> Obj | None:
        st = seen[0] = await task_status(admin, ns, name)
        return st if all(st.get(k) == v for k, v in want.items()) else None

    try:
        return await eventually(check)
    except AssertionError:
        pods = dec(await admin.request("GET", f"/api/v1/namespaces/{ns}/pods"))["items"]
        pod_status = [p.get("status") for p in pods]
        raise AssertionError(f"want {want}; task status {seen[0]}; pods {pod_status}") from None


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cstatus(name: str, state: tuple[Any, ...]) -> Obj:
    """A container status; state is ("waiting", reason) | ("running", t) |
    ("terminated", exit_code, t_start, t_end)."""
    kind = state[0]
    if kind == "waiting":
        st: Obj = {"waiting": {"reason": state[1]}}
    elif kind == "running":
        st = {"running": {"startedAt": ts(state[1])}}
    else:
        code, t1, t2 = state[1], state[2], state[3]
        st = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": ts(t1),
                "finishedAt": ts(t2),
            }
        }
    return {
        "name": name,
        "state": st,
        "ready": kind == "running",
        "restartCount": 0,
        "image": "busybox:1.36",
        "imageID": "",
    }


async def kubelet(admin: Kube, pod: Obj, phase: str, states: dict[str, tuple[Any, ...]]) -> None:
    """Write the pod's status like a kubelet would."""
    spec = pod["spec"]
    init = [c["name"] for c in spec.get("initContainers", [])]
    main = [c["name"] for c in spec["containers"]]

    def statuses(names: list[str]) -> list[Obj]:
        return [cstatus(n, states.get(n, ("waiting", "PodInitializing"))) for n in names]

    status: Obj = {
        "phase": phase,
        "startTime": ts(0),
        "containerStatuses": statuses(main),
        # like a kubelet: the pod runs, so it is scheduled (this also replaces a stale
        # Unschedulable condition the full tier's scheduler may have written before the bind)
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(0)}],
    }
    if init:
        status["initContainerStatuses"] = statuses(init)
    await write_pod_status(admin, pod, status)


async def write_pod_status(admin: Kube, pod: Obj, status: Obj) -> None:
    """Merge ``status`` into the pod's status (the ``pods/status`` subresource)."""
    meta = pod["metadata"]
    await admin.request(
        "PATCH",
        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
        body=enc.encode({"status": status}),
        content_type=MERGE,
    )


def api_calls(op: Operator, verb: str, resource: str) -> float:
    """Requests the operator sent (whatever their answer), from its metrics."""
    total = 0.0
    for metric in op.metrics.registry.collect():
        for s in metric.samples:
            if (
                s.name == "taskflow_api_requests_total"
                and s.labels["verb"] == verb
                and s.labels["resource"] == resource
            ):
                total += s.value
    return total


async def sa_kubeconfig(admin: Kube, kubeconfig: str, ns: str, name: str, path: Path) -> str:
    """A kubeconfig for ServiceAccount ``name`` of ``ns`` (created if absent; give it
    permissions with Roles of your own) on ``kubeconfig``'s cluster, written to ``path``."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    try:
        await admin.request(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", body=enc.encode(account)
        )
    except ApiError as exc:
        if exc.status != 409:
            raise
    token_request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token = dec(
        await admin.request(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            body=enc.encode(token_request),
        )
    )["status"]["token"]
    return write_token_kubeconfig(kubeconfig, token, name, path)


def write_token_kubeconfig(kubeconfig: str, token: str, user: str, path: Path) -> str:
    """``kubeconfig``'s cluster with a bearer-token user, written to ``path``."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    restricted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(restricted))
    return str(path)
