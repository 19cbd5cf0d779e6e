"""The chart in namespaced scope (ci/namespaced-values.yaml): Roles only, two replicas.

The operator handles Tasks in the namespace it was given and ignores the others; the two
replicas elect a leader through a Lease (the only RBAC in the release namespace); when the
leader's pod is deleted, the other replica takes over and finishes the next Task.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cluster.fixtures import FullCluster
from tests.e2e import chart, deploy

pytestmark = pytest.mark.e2e

RELEASE = "tf-ns"
NS = "taskflow-ns-system"
WATCHED = "taskflow-ns-watched"
OTHER = "taskflow-ns-other"
EXAMPLE = deploy.SEED_DIR / "task_example.yaml"
TASK = "example-taskflow"


_kubectl = deploy.kubectl_out
_json = deploy.kubectl_json


def _status(cluster: FullCluster, namespace: str, name: str) -> str:
    proc = cluster.kubectl(
        "get", "task", "-n", namespace, name, "-o", "jsonpath={.status.status}", check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


@dataclass
class Release:
    cluster: FullCluster


@pytest.fixture(scope="module")
def release(full_cluster: FullCluster) -> Iterator[Release]:
    if not full_cluster.registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    cluster = full_cluster
    image = deploy.build_and_push(cluster.registry)
    for ns in (WATCHED, OTHER):
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true")
        _kubectl(cluster, "create", "namespace", ns)
    proc = deploy.helm_install(
        cluster,
        image,
        release=RELEASE,
        namespace=NS,
        extra=[
            "-f",
            str(chart.NAMESPACED_VALUES),
            "--set-json",
            f'watchNamespaces=["{WATCHED}"]',
        ],
    )
    if proc.returncode != 0:
        pytest.fail(
            f"helm install: {proc.stdout}{proc.stderr}\n{deploy.diagnostics(cluster, NS, WATCHED)}"
        )
    try:
        yield Release(cluster)
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", check=False)
        for ns in (WATCHED, OTHER, NS):
            cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false")


def _wait_finished(cluster: FullCluster, namespace: str, name: str, timeout: float) -> str:
    try:
        deploy.wait_for(
            f"task {namespace}/{name}",
            lambda: _status(cluster, namespace, name) in ("Successful", "Failure"),
            timeout=timeout,
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{deploy.diagnostics(cluster, NS, namespace)}")
    return _status(cluster, namespace, name)


def _leader(cluster: FullCluster) -> str:
    lease = _json(cluster, "get", "lease", "-n", NS, RELEASE + "-taskflow")
    holder = str(lease["spec"].get("holderIdentity") or "")
    return holder


def test_no_cluster_wide_rbac(release: Release) -> None:
    out = _kubectl(
        release.cluster,
        "get",
        "clusterroles,clusterrolebindings",
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "name",
    )
    assert out.strip() == ""
    roles = _kubectl(
        release.cluster,
        "get",
        "roles",
        "-A",
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "name",
    )
    assert len(roles.split()) == 2  # one in the watched namespace, one (leases) in NS


def test_both_replicas_ready_and_one_leads(release: Release) -> None:
    cluster = release.cluster
    deployment = _json(cluster, "get", "deployment", "-n", NS, f"{RELEASE}-taskflow")
    assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
    pods = {
        p["metadata"]["name"]
        for p in _json(
            cluster, "get", "pods", "-n", NS, "-l", f"app.kubernetes.io/instance={RELEASE}"
        )["items"]
    }
    deploy.wait_for("a lease holder", lambda: bool(_leader(cluster)), timeout=60)
    assert any(_leader(cluster).startswith(p) for p in pods), (_leader(cluster), pods)


def test_watched_namespace_only(release: Release) -> None:
    cluster = release.cluster
    _kubectl(cluster, "apply", "-n", WATCHED, "-f", str(EXAMPLE))
    _kubectl(cluster, "apply", "-n", OTHER, "-f", str(EXAMPLE))
    assert _wait_finished(cluster, WATCHED, TASK, 180) == "Successful"
    time.sleep(3)
    # The other namespace is not ours: no status, no pod.
    assert _status(cluster, OTHER, TASK) == ""
    pods = _kubectl(cluster, "get", "pods", "-n", OTHER, "-o", "name")
    assert pods.strip() == ""


def test_standby_takes_over_when_the_leader_goes(release: Release) -> None:
    cluster = release.cluster
    leader = _leader(cluster)
    pods = _json(cluster, "get", "pods", "-n", NS, "-l", f"app.kubernetes.io/instance={RELEASE}")[
        "items"
    ]
    leader_pod = next(
        p["metadata"]["name"] for p in pods if leader.startswith(p["metadata"]["name"])
    )
    _kubectl(cluster, "delete", "pod", "-n", NS, leader_pod, "--wait=false")
    deploy.wait_for(
        "a new leader",
        lambda: _leader(cluster) not in ("", leader),
        timeout=90,
    )
    _kubectl(cluster, "delete", "task", "-n", WATCHED, TASK, "--wait=true")
    _kubectl(cluster, "apply", "-n", WATCHED, "-f", str(EXAMPLE))
    assert _wait_finished(cluster, WATCHED, TASK, 180) == "Successful"
