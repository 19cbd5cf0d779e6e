"""`nox -s chaos` / `python -m tests.chaos [--quick] [-n N] [--only SCENARIO]`.

Cluster: --kubeconfig / $KUBECONFIG if given, else the running harness cluster, else the
harness's full tier is started (and stopped at the end). Scenarios that restart components
or talk to etcd need the harness's cluster (they are skipped, and say so, on another one).
Prints the table, then ``chaos: N tasks, lost L, duplicated D, wrong W``; exits 1 unless
every scenario converged with nothing lost, duplicated or wrong and a healthy operator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from benchmarks import kubeops

from taskflow import labels
from taskflow.engine.kube import ApiError, Kube, connect
from tests.cluster import harness
from tests.cluster.fixtures import REGISTRY_ENV, ClusterSession

from . import checks, faults, operator, report, workload
from .faults import Context, Scenario
from .proxy import Proxy

T = TypeVar("T")
TASKS = kubeops.TASKS
PODS = kubeops.PODS
EVENTS = "/api/v1/namespaces/{ns}/events"
#: how far into the burst each fault lands: once this share of its Tasks has finished
FAULT_AT = 0.2
START_WITHIN = 120.0  # seconds for the burst to reach FAULT_AT
NAMESPACE_GONE_WITHIN = 180.0
#: what a request to a cluster under a fault may raise (and be tried again)
TRANSIENT = (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _list(admin: Kube, path: str, query: dict[str, str | int] | None = None) -> list[Any]:
    body = msgspec.json.decode(await admin.request("GET", path, query=query, request_timeout=15))
    return list(body["items"])


async def retrying(what: str, call: Callable[[], Awaitable[T]], within: float = 120) -> T:
    """``call`` until it answers (the API server may be down for a few seconds)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {within:.0f} s: {exc}") from exc
        await asyncio.sleep(1)


async def snapshot(admin: Kube, ns: str) -> tuple[list[Any], list[Any], list[Any]]:
    tasks = await _list(admin, TASKS.format(ns=ns))
    pods = await _list(admin, PODS.format(ns=ns), {"labelSelector": labels.MANAGED_BY_SELECTOR})
    events = await _list(admin, EVENTS.format(ns=ns), {"fieldSelector": "involvedObject.kind=Task"})
    return tasks, pods, events


async def finished_count(admin: Kube, ns: str) -> int | None:
    """Tasks final now, None while the API server does not answer."""
    try:
        return checks.finished(await _list(admin, TASKS.format(ns=ns)))
    except TRANSIENT:
        return None


async def wait_finished(admin: Kube, ns: str, want: int, within: float) -> float | None:
    """Seconds until ``want`` Tasks are final, polling every second; None if not ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if (await finished_count(admin, ns) or 0) >= want:
            return time.monotonic() - start
        await asyncio.sleep(1)
    return None


async def namespace_gone(admin: Kube, ns: str) -> None:
    """DELETE the namespace and wait until it is gone (the API server may be coming back)."""
    path = f"/api/v1/namespaces/{ns}"

    async def delete() -> None:
        try:
            await admin.request("DELETE", path)
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or going already
                raise

    async def gone() -> bool:
        try:
            await admin.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return True
        except TRANSIENT:
            pass
        return False

    await retrying(f"DELETE namespace {ns}", delete)
    await kubeops.wait_until(gone, f"namespace {ns} deleted", within=NAMESPACE_GONE_WITHIN)


@asynccontextmanager
async def scenario_namespace(admin: Kube, name: str) -> AsyncIterator[str]:
    """A fresh namespace; deleted afterwards, even when the API server was down (the pods
    must go before the next scenario: the node runs at most 110)."""
    ns = f"chaos-{name}-{uuid.uuid4().hex[:6]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    await admin.request("POST", "/api/v1/namespaces", body=msgspec.json.encode(body))
    try:
        await kubeops.wait_populated(admin, ns)
        yield ns
    finally:
        await namespace_gone(admin, ns)


@dataclass
class Setup:
    """What every scenario of one run shares."""

    admin: Kube
    admin_kubeconfig: str
    sa: str  # the operator's ServiceAccount
    bearer: str  # its token
    n: int
    within: float
    logs: Path
    executors: tuple[str, ...]
    agent_image: str | None


async def run_scenario(run: Setup, sc: Scenario) -> report.Row:
    admin, n, within = run.admin, run.n, run.within
    docs = workload.burst(n, run.executors)
    async with scenario_namespace(admin, sc.name) as ns:
        proxy = None
        server = operator.server_of(run.admin_kubeconfig)
        if sc.proxy:
            host, _, port = server.removeprefix("https://").partition(":")
            proxy = Proxy(host, int(port or 443))
            server = f"https://127.0.0.1:{await proxy.start()}"
        kubeconfig = operator.sa_kubeconfig(
            run.admin_kubeconfig, run.bearer, server, run.logs / f"{ns}.kubeconfig"
        )
        extra = list(sc.operator_args)
        if run.agent_image:
            extra += ["--agent-image", run.agent_image]
        lease = f"chaos-{ns}" if sc.replicas > 1 else ""
        if lease:
            extra += ["--lease-name", lease]
        ops = operator.Operators(kubeconfig, ns, run.logs, extra)
        ctx = Context(admin, ns, ops, run.sa, proxy, lease)
        try:
            if sc.setup is not None:
                await sc.setup(ctx)
            for _ in range(sc.replicas):
                ops.start()
            await ops.running[0].wait_ready()
            log(f"{sc.name}: {n} Tasks into {ns}")
            await kubeops.create_all(admin, TASKS.format(ns=ns), docs)
            if await wait_finished(admin, ns, max(1, int(n * FAULT_AT)), START_WITHIN) is None:
                log(f"{sc.name}: the burst did not reach {FAULT_AT:.0%} in {START_WITHIN:.0f} s")
            log(f"{sc.name}: fault")
            fault_at = time.monotonic()
            hit = await sc.fault(ctx)
            for note in hit.notes:
                log(f"{sc.name}: {note}")
            left = within - (time.monotonic() - fault_at)
            waited = await wait_finished(admin, ns, n, max(left, 0))
            converge = None if waited is None else time.monotonic() - fault_at
            tasks, pods, events = await retrying("final lists", lambda: snapshot(admin, ns))
            verdict = checks.judge(docs, tasks, pods, events)
            healthy = bool(ops.running) and all(
                await asyncio.gather(
                    *(asyncio.to_thread(operator.healthy, op) for op in ops.running)
                )
            )
            notes = list(hit.notes)
            if healthy:  # a dead operator has no /metrics to read
                relisted = sum(
                    await asyncio.gather(
                        *(asyncio.to_thread(operator.relists, op) for op in ops.running)
                    )
                )
                notes.append(f"the running operator relisted {relisted:.0f} times (410 Gone)")
            else:
                notes += [f"{op.name} /healthz failed:\n{op.log_tail()}" for op in ops.running]
            if not hit.hit:
                notes.append("the fault did not demonstrably happen: this row proves nothing")
            notes += verdict.problems[:20]
            row = report.Row(sc.name, verdict, converge, healthy, tuple(notes), hit.hit)
        finally:
            ops.stop_all()
            if proxy is not None:
                await proxy.close()
            if sc.cleanup is not None:
                await retrying("cleanup", lambda: sc.cleanup(ctx))  # type: ignore[misc]
    log(f"{sc.name}: {report.summary([row])}, converged in {row.converge_s or -1:.0f} s")
    return row


def agent_image(registry: str) -> str:
    """The agent image (the Containerfile's ``agent`` target; buildah caches it), pushed to
    the cluster's registry."""
    from tests.e2e import images

    return images.push_versioned(images.build_agent().tag, registry, "taskflow/agent")


async def run(
    kubeconfig: str,
    scenarios: Sequence[Scenario],
    n: int,
    within: float,
    registry: str,
) -> list[report.Row]:
    admin = await connect(kubeconfig=kubeconfig)
    try:
        await kubeops.ensure_crd(admin)
        sa = await asyncio.to_thread(operator.install_rbac, kubeconfig)
        bearer = await operator.token(admin, sa)
        logs = operator.logdir()
        log(f"operator logs and kubeconfigs in {logs}")
        agent = None
        if registry:
            started = time.monotonic()
            agent = await asyncio.to_thread(agent_image, registry)
            log(f"agent image {agent} in {time.monotonic() - started:.0f} s")
        executors = ("kubelet", "agent") if agent else ("kubelet",)
        setup = Setup(admin, kubeconfig, sa, bearer, n, within, logs, executors, agent)
        rows = []
        for sc in scenarios:
            rows.append(await run_scenario(setup, sc))
        return rows
    finally:
        await admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"N=20, only {', '.join(faults.QUICK)}"
    )
    parser.add_argument("-n", type=int, help="Tasks per scenario (default 100, --quick 20)")
    names = [s.name for s in faults.SCENARIOS]
    parser.add_argument("--only", action="append", choices=names, help="run only these scenarios")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None)
    parser.add_argument(
        "--deadline",
        type=float,
        default=240,
        help="seconds from the fault until every Task must be final (default: %(default)s)",
    )
    parser.add_argument(
        "--kubelet-only",
        action="store_true",
        help="no agent Tasks (else half the Tasks use executor: agent when the cluster has a "
        f"registry: the harness's, or ${REGISTRY_ENV})",
    )
    opts = parser.parse_args(argv)
    # A CI runner's SIGTERM unwinds like Ctrl-C: operators killed, namespaces deleted, the
    # cluster this run started stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    n = opts.n or (20 if opts.quick else 100)
    wanted = opts.only or (list(faults.QUICK) if opts.quick else names)
    session = None
    kubeconfig = opts.kubeconfig
    registry = os.environ.get(REGISTRY_ENV, "")
    if kubeconfig is None:
        session = ClusterSession(None)
        cluster = session.full()
        kubeconfig, registry = cluster.kubeconfig, cluster.registry
    if opts.kubelet_only:
        registry = ""
    local = harness.running()
    on_harness = (
        local is not None and Path(local.kubeconfig).resolve() == Path(kubeconfig).resolve()
    )
    scenarios = [
        s for s in faults.SCENARIOS if s.name in wanted and (on_harness or not s.needs_harness)
    ]
    skipped = [s for s in wanted if s not in {x.name for x in scenarios}]
    started = time.monotonic()
    try:
        rows = asyncio.run(run(kubeconfig, scenarios, n, opts.deadline, registry))
    finally:
        if session is not None:
            session.close()
    print(report.table(rows))
    for row in rows:
        for note in row.notes:
            print(f"  {row.scenario}: {note}")
    if skipped:
        print(f"  skipped (need the local harness cluster): {', '.join(skipped)}")
    print(f"  total {time.monotonic() - started:.0f} s")
    print(report.summary(rows))
    return 0 if report.passed(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
