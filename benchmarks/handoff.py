"""The ``handoff`` part, step hand-off on the real node: 20 no-op steps under the agent
executor, the kubelet executor and the two raw-pod floors, in the same run; and the hand-off
between 1 s steps from the agent's own timestamps.

    flock /work/e2e.lock env KUBECONFIG=... python -m benchmarks.tools.handoff \\
        --registry 127.0.0.1:35000 [--runs 3] [--steps 20]

Deploys the operator with Helm into taskflow-system (so: only under the machine's e2e lock),
with the agent image built and pushed by the e2e harness; then, one after another, ``--runs``
times each (median reported):

* ``agent``: a Task, ``executor: agent``, ``--steps`` busybox steps running ``true``;
* ``kubelet``: the same Task with ``executor: kubelet`` (init containers);
* ``raw-init``: a bare pod, the steps as init containers but the last (the kubelet's floor);
* ``raw-parallel``: a bare pod, the steps as regular containers started together, each
  waiting for the previous one's file in a shared emptyDir with a 10 ms shell poll;
* ``agent-sidecar``: the agent Task with one native sidecar (busybox ``sleep``, no probe),
  which the kubelet starts before the steps and stops after them;
* ``agent-retries``: the agent Task with ``retries: 2`` on every step (never used: the
  cost of the flags alone).

Wall time = from the create request to the moment a 100 ms poll sees the Task (or pod)
finished, on this machine's clock: what a user waits, operator included for the Tasks.
Hand-off: a Task of ``--chain`` ``sleep 1`` steps; next step's ``startedAt`` minus the previous
step's ``finishedAt`` (the agents' millisecond timestamps in ``status.steps``).

``python -m benchmarks.run`` takes its ``handoff20.*``/``handoff.*`` rows from :func:`run`;
``python -m benchmarks.tools.handoff`` prints every variant's runs.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .goals import AGENT_X, KUBELET_X
from .report import Metric, ratio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NS = "taskflow-bench-handoff"
BUSYBOX = "busybox:1.28"
POLL = 0.1
DEADLINE = 300.0
# run()'s (runs, steps, chain) by --quick: the runner's table says them
SIZES = {False: (3, 20, 11), True: (1, 5, 3)}
KUBECONFIG: list[str] = []  # run()'s cluster; else kubectl's own ($KUBECONFIG)


def kubectl(*args: str, stdin: str | None = None) -> str:
    flags = [f"--kubeconfig={k}" for k in KUBECONFIG]
    proc = subprocess.run(
        ["kubectl", *flags, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def apply(obj: dict[str, Any]) -> None:
    kubectl("create", "-f", "-", stdin=json.dumps(obj))


def get(kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl("get", kind, name, "-n", NS, "-o", "json"))
    return out


def wait(what: str, done: Callable[[], bool]) -> float:
    """Seconds until ``done()``, polled every POLL seconds (bounded by DEADLINE)."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > DEADLINE:
            raise TimeoutError(f"{what}: not done within {DEADLINE:.0f}s")
        time.sleep(POLL)
    return time.monotonic() - started


def task(name: str, executor: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"executor": executor, "steps": steps, **spec},
    }


SIDECAR = {"name": "side", "image": BUSYBOX, "command": ["sleep", "3600"]}


def noop_steps(n: int) -> list[dict[str, Any]]:
    return [{"name": f"s{i:02d}", "image": BUSYBOX, "command": ["true"]} for i in range(n)]


def run_task(obj: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    name = obj["metadata"]["name"]
    started = time.monotonic()
    apply(obj)
    last: dict[str, Any] = {}

    def finished() -> bool:
        last.update(get("task", name))
        return (last.get("status") or {}).get("status") in ("Successful", "Failure")

    wait(name, finished)
    seconds = time.monotonic() - started
    if last["status"]["status"] != "Successful":
        raise RuntimeError(f"{name}: {json.dumps(last['status'])}")
    return seconds, last


def raw_pod(name: str, n: int, parallel: bool) -> dict[str, Any]:
    mounts = [{"name": "done", "mountPath": "/done"}]
    if parallel:
        containers = []
        for i in range(n):
            wait_prev = f"while [ ! -f /done/{i - 1} ]; do sleep 0.01; done; " if i else ""
            containers.append(
                {
                    "name": f"s{i:02d}",
                    "image": BUSYBOX,
                    "command": ["sh", "-c", f"{wait_prev}true; touch /done/{i}"],
                    "volumeMounts": mounts,
                }
            )
        spec: dict[str, Any] = {"containers": containers}
    else:
        steps = [{"name": f"s{i:02d}", "image": BUSYBOX, "command": ["true"]} for i in range(n)]
        spec = {"initContainers": steps[:-1], "containers": steps[-1:]}
    spec |= {"restartPolicy": "Never", "volumes": [{"name": "done", "emptyDir": {}}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def run_pod(obj: dict[str, Any]) -> float:
    name = obj["metadata"]["name"]
    started = time.monotonic()
    apply(obj)

    def finished() -> bool:
        phase: str | None = get("pod", name)["status"].get("phase")
        if phase == "Failed":
            raise RuntimeError(f"pod {name} failed")
        return phase == "Succeeded"

    wait(name, finished)
    return time.monotonic() - started


def _ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def handoffs(status: dict[str, Any]) -> list[float]:
    steps = status["steps"]
    return [
        (_ms(b["startedAt"]) - _ms(a["finishedAt"])).total_seconds() * 1000
        for a, b in itertools.pairwise(steps)
    ]


def deploy_operator(kubeconfig: str, registry: str) -> str:
    from tests.cluster.fixtures import FullCluster
    from tests.e2e import deploy

    cluster = FullCluster(kubeconfig, registry)
    # this branch's CRD (helm never upgrades crds/; the Tasks here use spec.executor)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "charts/taskflow/crds"))
    operator = deploy.build_and_push(registry)
    agent = operator.agent
    proc = deploy.helm_install(cluster, operator)
    if proc.returncode != 0:
        raise RuntimeError(f"helm install failed: {proc.stdout}{proc.stderr}")
    return agent


def uninstall(kubeconfig: str, registry: str) -> None:
    from tests.cluster.fixtures import FullCluster

    FullCluster(kubeconfig, registry).helm(
        "uninstall", "taskflow", "-n", "taskflow-system", check=False
    )


Walls = dict[str, list[float]]


def measure(
    kubeconfig: str, registry: str, runs: int, steps: int, chain: int, deploy: bool = True
) -> tuple[Walls, list[float]]:
    """Wall seconds per variant (``runs`` each) and the hand-offs (ms) of a ``chain`` of
    ``sleep 1`` steps; installs the operator with Helm first unless ``deploy`` is false."""
    os.environ.setdefault("BUILDAH_ISOLATION", "chroot")
    if deploy:
        print(f"agent image: {deploy_operator(kubeconfig, registry)}", file=sys.stderr)
    walls: Walls = {
        "agent": [],
        "kubelet": [],
        "raw-init": [],
        "raw-parallel": [],
        "agent-sidecar": [],
        "agent-retries": [],
    }
    try:
        kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true")
        kubectl("create", "namespace", NS)
        # warm-up: images on the node, the operator's informers
        run_task(task("warm", "agent", noop_steps(2)))
        for r in range(runs):
            walls["agent"].append(run_task(task(f"agent-{r}", "agent", noop_steps(steps)))[0])
            walls["kubelet"].append(run_task(task(f"kubelet-{r}", "kubelet", noop_steps(steps)))[0])
            walls["raw-init"].append(run_pod(raw_pod(f"raw-init-{r}", steps, parallel=False)))
            walls["raw-parallel"].append(run_pod(raw_pod(f"raw-par-{r}", steps, parallel=True)))
            with_sidecar = task(f"sidecar-{r}", "agent", noop_steps(steps), sidecars=[SIDECAR])
            walls["agent-sidecar"].append(run_task(with_sidecar)[0])
            retried = [s | {"retries": 2} for s in noop_steps(steps)]
            walls["agent-retries"].append(run_task(task(f"retries-{r}", "agent", retried))[0])
            done = ", ".join(f"{k} {v[-1]:.1f}s" for k, v in walls.items())
            print(f"run {r + 1}: {done}", file=sys.stderr, flush=True)
        sleeps = [
            {"name": f"s{i:02d}", "image": BUSYBOX, "command": ["sleep", "1"]} for i in range(chain)
        ]
        _, chained = run_task(task("chain", "agent", sleeps))
        gaps = handoffs(chained["status"])
    finally:
        kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false")
        if deploy:
            uninstall(kubeconfig, registry)
    return walls, gaps


def measured(kubeconfig: str, quick: bool) -> Mapping[str, float | None]:
    """BENCH key -> value, on the full tier at
    ``kubeconfig`` with the harness's registry (or $TASKFLOW_TEST_REGISTRY). Quick: one
    run of 5 steps and a chain of 3 (the keys keep their names; not for quoting)."""
    from tests.cluster import config

    registry = os.environ.get("TASKFLOW_TEST_REGISTRY") or config.REGISTRY
    runs, steps, chain = SIZES[quick]
    KUBECONFIG[:] = [kubeconfig]
    try:
        walls, gaps = measure(kubeconfig, registry, runs, steps, chain)
    finally:
        KUBECONFIG.clear()
    med = {name: statistics.median(values) for name, values in walls.items()}
    return {
        "handoff20.init_floor_s": med["raw-init"],
        "handoff20.parallel_floor_s": med["raw-parallel"],
        "handoff20.kubelet_mode_s": med["kubelet"],
        "handoff20.agent_mode_s": med["agent"],
        "handoff20.agent_sidecar_s": med["agent-sidecar"],
        "handoff20.agent_retries_s": med["agent-retries"],
        "handoff.agent_long_step_ms": statistics.median(gaps),
    }


def run(kubeconfig: str, quick: bool) -> list[Metric]:
    """The runner's rows, with each mode's goal against its floor."""
    v: dict[str, float | None] = dict(measured(kubeconfig, quick))
    runs, steps, chain = SIZES[quick]
    of = f"{steps} no-op steps, median of {runs}"
    agent_x = ratio(v.get("handoff20.agent_mode_s"), v.get("handoff20.parallel_floor_s"))
    kubelet_x = ratio(v.get("handoff20.kubelet_mode_s"), v.get("handoff20.init_floor_s"))
    rows = [
        ("handoff20.init_floor_s", f"{of}: raw pod, init containers", "s", ""),
        (
            "handoff20.parallel_floor_s",
            f"{of}: raw pod, regular containers chaining done files (10 ms poll)",
            "s",
            "",
        ),
        (
            "handoff20.kubelet_mode_s",
            f"{of}: Task, executor kubelet",
            "s",
            f"<= {KUBELET_X}x init floor; here {kubelet_x:.2f}x"
            if kubelet_x
            else f"<= {KUBELET_X}x init floor",
        ),
        (
            "handoff20.agent_mode_s",
            f"{of}: Task, executor agent",
            "s",
            f"<= {AGENT_X}x parallel floor; here {agent_x:.2f}x" if agent_x else f"<= {AGENT_X}x",
        ),
        (
            "handoff20.agent_sidecar_s",
            f"{of}: Task, executor agent, one sidecar",
            "s",
            _cost(v, "handoff20.agent_sidecar_s"),
        ),
        (
            "handoff20.agent_retries_s",
            f"{of}: Task, executor agent, retries: 2 on every step (unused)",
            "s",
            _cost(v, "handoff20.agent_retries_s"),
        ),
        (
            "handoff.agent_long_step_ms",
            f"agent: median gap between {chain} `sleep 1` steps (its timestamps)",
            "ms",
            "<= 10 ms",
        ),
    ]
    return [Metric(key, label, v.get(key), unit, goal) for key, label, unit, goal in rows]


def _cost(v: Mapping[str, float | None], key: str) -> str:
    """``+0.4 s over the plain agent Task``: what the feature costs, same run."""
    base, with_it = v.get("handoff20.agent_mode_s"), v.get(key)
    if base is None or with_it is None:
        return ""
    return f"{with_it - base:+.2f} s over the plain agent Task"
