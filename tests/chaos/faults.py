"""The scenarios: one fault each, injected in the middle of a burst. A fault returns what
it did (notes for the report) and whether it demonstrably hit (a fault that did not happen
proves nothing: the row fails)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from taskflow.engine.kube import ApiError, Kube
from tests.cluster import config, harness

from .operator import NAMESPACE, Operators, Replica, metric_sum
from .proxy import Proxy

BLACKHOLE_SECONDS = 20.0
APF_SECONDS = 30.0  # how long the operator's requests go through the tiny priority level
COMPACTIONS = 3
ETCD = f"http://127.0.0.1:{config.ETCD_PORT}"  # etcd's v3 JSON gateway, loopback only


@dataclass
class Context:
    admin: Kube
    namespace: str
    operators: Operators
    sa: str  # the operator's ServiceAccount
    proxy: Proxy | None = None
    lease: str = ""


@dataclass
class Hit:
    notes: list[str] = field(default_factory=list)
    hit: bool = True


Fault = Callable[[Context], Awaitable[Hit]]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    needs_harness: bool = False  # restarts components / talks to etcd: the local cluster only
    replicas: int = 1
    proxy: bool = False
    operator_args: tuple[str, ...] = ()
    setup: Fault | None = None  # before the burst (APF objects)
    cleanup: Callable[[Context], Awaitable[None]] | None = None


async def _restart(component: str) -> Hit:
    seconds = await asyncio.to_thread(harness.restart, component, kill=True)
    return Hit([f"{component} kill -9, serving again after {seconds:.1f} s"])


async def apiserver_kill(ctx: Context) -> Hit:
    return await _restart("kube-apiserver")


async def etcd_kill(ctx: Context) -> Hit:
    return await _restart("etcd")


def _etcd(path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        ETCD + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


def _compact() -> int:
    """Compact etcd's whole history up to its current revision; returns that revision."""
    key = base64.b64encode(b"\0").decode()
    revision = int(_etcd("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])
    _etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


async def etcd_compaction(ctx: Context) -> Hit:
    revisions = []
    for _ in range(COMPACTIONS):
        revisions.append(await asyncio.to_thread(_compact))
        await asyncio.sleep(3)  # spread over the burst: watches resume across each
    return Hit([f"etcd compacted at revisions {', '.join(map(str, revisions))}"])


async def operator_kill(ctx: Context) -> Hit:
    old = ctx.operators.running[0]
    ctx.operators.kill(old)
    new = ctx.operators.start()
    await new.wait_ready()
    return Hit([f"operator pid {old.pid} kill -9, pid {new.pid} took over"])


async def _leader(ctx: Context) -> Replica | None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{ctx.lease}"
    try:
        lease = msgspec.json.decode(await ctx.admin.request("GET", path))
    except ApiError:
        return None
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    return next((op for op in ctx.operators.running if holder.startswith(op.name + "_")), None)


async def leader_kill(ctx: Context) -> Hit:
    for _ in range(120):  # the Lease is taken within seconds of the start
        leader = await _leader(ctx)
        if leader is not None:
            break
        await asyncio.sleep(0.5)
    else:
        return Hit(["no replica held the Lease within 60 s"], hit=False)
    ctx.operators.kill(leader)
    return Hit([f"leader {leader.name} (pid {leader.pid}) kill -9 of {ctx.operators.started}"])


async def proxy_blackhole(ctx: Context) -> Hit:
    assert ctx.proxy is not None
    cut = ctx.proxy.cut()
    ctx.proxy.blackhole()
    try:
        await asyncio.sleep(BLACKHOLE_SECONDS)  # the partition itself, not a wait for a state
    finally:
        ctx.proxy.heal()
    return Hit(
        [f"cut {cut} connections, then black-holed everything {BLACKHOLE_SECONDS:.0f} s"],
        hit=cut > 0,
    )


def _apf_objects(ctx: Context, sa: str) -> list[tuple[str, dict[str, Any]]]:
    group = "/apis/flowcontrol.apiserver.k8s.io/v1"
    name = f"chaos-{ctx.namespace}"
    level = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {
            "type": "Limited",
            "limited": {
                "nominalConcurrencyShares": 1,
                "lendablePercent": 0,
                "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Reject"},
            },
        },
    }
    everything = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"]}
    schema = {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": 50,  # before the built-in service-accounts schema (9000)
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"name": sa, "namespace": NAMESPACE},
                        }
                    ],
                    "resourceRules": [{**everything, "clusterScope": True}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }
    return [
        (f"{group}/prioritylevelconfigurations", level),
        (f"{group}/flowschemas", schema),
    ]


async def apf_setup(ctx: Context) -> Hit:
    for path, obj in _apf_objects(ctx, ctx.sa):
        await ctx.admin.request("POST", path, body=msgspec.json.encode(obj))
    return Hit([])


async def apf_cleanup(ctx: Context) -> None:
    for path, obj in reversed(_apf_objects(ctx, ctx.sa)):
        try:
            await ctx.admin.request("DELETE", f"{path}/{obj['metadata']['name']}")
        except ApiError as exc:
            if exc.status != 404:
                raise


async def _rejected_by_apiserver(ctx: Context) -> float:
    text = (await ctx.admin.request("GET", "/metrics")).decode()
    level = f'priority_level="chaos-{ctx.namespace}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_flowcontrol_rejected_requests_total") and level in line
    )


async def apf_429(ctx: Context) -> Hit:
    await asyncio.sleep(APF_SECONDS)  # the burst runs through the tiny level meanwhile
    retried = sum(
        await asyncio.gather(
            *(
                asyncio.to_thread(metric_sum, op, "rest_client_request_retries_total", 'code="429"')
                for op in ctx.operators.running
            )
        )
    )
    rejected = await _rejected_by_apiserver(ctx)
    await apf_cleanup(ctx)
    return Hit(
        [
            f"{APF_SECONDS:.0f} s at a 1-share priority level (Reject): API server rejected "
            f"{rejected:.0f} requests, the operator retried {retried:.0f} after 429"
        ],
        hit=rejected > 0 and retried > 0,
    )


LEADER_ARGS = ("--leader-elect", "--lease-namespace", NAMESPACE)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("apiserver-kill", apiserver_kill, needs_harness=True),
    Scenario("etcd-kill", etcd_kill, needs_harness=True),
    Scenario("etcd-compaction", etcd_compaction, needs_harness=True),
    Scenario("operator-kill", operator_kill),
    Scenario("leader-kill", leader_kill, replicas=2, operator_args=LEADER_ARGS),
    Scenario("proxy-blackhole", proxy_blackhole, proxy=True),
    Scenario(
        "apf-429",
        apf_429,
        operator_args=("--workers", "16", "--qps", "0"),
        setup=apf_setup,
        cleanup=apf_cleanup,
    ),
)
QUICK = ("apiserver-kill", "operator-kill", "proxy-blackhole")
