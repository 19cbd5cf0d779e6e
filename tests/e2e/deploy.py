"""Build, push and `helm install` the operator on a cluster (shared by the e2e test and demo).

``python -m tests.e2e.deploy`` runs the demo: full local cluster (started if needed), the
operator image, the chart, the seed's example-taskflow, and `kubectl get tasks` at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.cluster import config as cluster_config
from tests.cluster.fixtures import FullCluster
from tests.cluster.node import MIRRORED
from tests.e2e import chart, images

RELEASE = "taskflow"
NAMESPACE = "taskflow-system"
SEED_DIR = chart.ROOT / "tests" / "data" / "seed"
IMAGE_REPOSITORY = "taskflow/operator"


def _log(msg: str) -> None:
    print(f"[deploy] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class OperatorImage:
    repository: str  # registry/taskflow/operator
    tag: str
    size_bytes: int  # uncompressed, local
    pushed_bytes: int  # compressed, as stored in the registry
    build_seconds: float
    #: registry/taskflow/agent:<version>-<id>: the chart's agent.image (the default executor)
    agent: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def build_and_push(registry: str) -> OperatorImage:
    """Base image (cached) + operator image, pushed as ``registry/taskflow/operator:<id>``,
    and the agent image (agent pods install it), ``registry/taskflow/agent:<id>``."""
    built = images.build_operator()
    tag = f"{images.version()}-{images.image_id(built.tag)[:12]}"
    repository = f"{registry}/{IMAGE_REPOSITORY}"
    images.push(built.tag, f"{repository}:{tag}")
    try:
        pushed = images.registry_image_size(registry, IMAGE_REPOSITORY, tag)
    except OSError:
        pushed = 0
    agent = images.push_versioned(images.build_agent().tag, registry, "taskflow/agent")
    return OperatorImage(repository, tag, built.size_bytes, pushed, built.seconds, agent)


def registry_mirrors(cluster: FullCluster) -> dict[str, str]:
    """The in-cluster operator reads images' ENTRYPOINT/CMD from the harness registries,
    which pods reach at the node address (not the host's 127.0.0.1): the same mapping
    containerd's hosts config makes. Empty for a cluster of your own."""
    if cluster.registry != cluster_config.REGISTRY:
        return {}
    local = cluster_config.node_url(cluster_config.REGISTRY)
    auth = cluster_config.AUTH_REGISTRY
    return {
        **dict.fromkeys((*MIRRORED, cluster_config.REGISTRY), local),
        auth: cluster_config.node_url(auth),
    }


def helm_install(
    cluster: FullCluster,
    image: OperatorImage,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    extra: Sequence[str] = (),
    timeout: str = "5m",
) -> subprocess.CompletedProcess[str]:
    """`helm upgrade --install --wait` the chart with the given image; returns helm's output."""
    return cluster.helm(
        "upgrade",
        "--install",
        release,
        str(chart.CHART_DIR),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        f"image.repository={image.repository}",
        "--set",
        f"image.tag={image.tag}",
        "--set",
        f"agent.image={image.agent}",
        "--set-json",
        f"registryMirrors={json.dumps(registry_mirrors(cluster))}",
        "--wait",
        "--timeout",
        timeout,
        *extra,
        check=False,
    )


def kubectl_out(cluster: FullCluster, *args: str) -> str:
    """kubectl's stdout; a failure raises with kubectl's own error text."""
    proc = cluster.kubectl(*args, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def kubectl_json(cluster: FullCluster, *args: str) -> dict[str, Any]:
    data = json.loads(kubectl_out(cluster, *args, "-o", "json"))
    assert isinstance(data, dict)
    return data


def wait_for(
    what: str, probe: Callable[[], bool], *, timeout: float, interval: float = 2.0
) -> float:
    """Poll `probe` until true; returns seconds waited; raises TimeoutError with `what`."""
    start = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def diagnostics(cluster: FullCluster, namespace: str, tasks_namespace: str) -> str:
    """Everything worth reading when something went wrong."""
    parts = []
    for args in (
        ("get", "all,leases", "-n", namespace, "-o", "wide"),
        ("describe", "pods", "-n", namespace),
        ("logs", "-n", namespace, "-l", "app.kubernetes.io/name=taskflow", "--tail=200"),
        ("get", "tasks", "-n", tasks_namespace, "-o", "yaml"),
        ("describe", "tasks", "-n", tasks_namespace),
        ("describe", "pods", "-n", tasks_namespace),
        ("get", "events", "-n", tasks_namespace, "--sort-by=.lastTimestamp"),
    ):
        proc = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(parts)


def demo(argv: Sequence[str] | None = None) -> int:
    """Cluster (started if absent), image, chart, the seed's example-taskflow, get tasks."""
    del argv
    from tests.cluster import harness

    info = harness.running()
    if info is None or info.tier != "full":
        _log("starting the full local cluster (first run builds Kubernetes: 15-30 min)")
        info = harness.up("full", owner="demo")
    cluster = FullCluster(info.kubeconfig, info.registry or "")
    started = time.monotonic()
    image = build_and_push(cluster.registry)
    _log(f"image {image.ref} ({image.size_bytes / 1e6:.0f} MB) in {image.build_seconds:.0f}s")
    proc = helm_install(cluster, image)
    print(proc.stdout, proc.stderr, sep="")
    if proc.returncode != 0:
        print(diagnostics(cluster, NAMESPACE, "default"), file=sys.stderr)
        return 1
    example = SEED_DIR / "task_example.yaml"
    cluster.kubectl("delete", "-f", str(example), "--ignore-not-found", "--wait=true")
    print(cluster.kubectl("apply", "-f", str(example)).stdout)

    last = [""]

    def finished() -> bool:
        table = cluster.kubectl("get", "task", "example-taskflow", check=False).stdout
        row = table.strip().splitlines()[-1] if table.strip() else ""
        if row.split()[:3] != last[0].split()[:3]:  # print when STATUS or STEP change
            print(row if last[0] else table.strip(), flush=True)
            last[0] = row
        out = cluster.kubectl(
            "get", "task", "example-taskflow", "-o", "jsonpath={.status.status}", check=False
        ).stdout
        return out in ("Successful", "Failure")

    try:
        wait_for("example-taskflow", finished, timeout=300, interval=2)
    except TimeoutError as exc:
        print(f"{exc}\n{diagnostics(cluster, NAMESPACE, 'default')}", file=sys.stderr)
        return 1
    print("$ kubectl get tasks")
    print(cluster.kubectl("get", "tasks").stdout)
    print("$ kubectl logs example-taskflow-pod -c step3")
    print(cluster.kubectl("logs", "example-taskflow-pod", "-c", "step3").stdout)
    print(f"demo ready in {time.monotonic() - started:.0f}s (after the cluster was up).")
    print(f"export KUBECONFIG={info.kubeconfig}")
    print("tear down: nox -s cluster -- down   (or: python -m tests.cluster down)")
    return 0


if __name__ == "__main__":
    raise SystemExit(demo(sys.argv[1:]))
