"""Multi-platform images on the real (amd64) node: ``images.build_all`` pushes the operator
and the agent as OCI indexes of linux/amd64 and linux/arm64, the chart runs from those
indexes, and what the platforms mean for a Task:

* both indexes hold both platforms, each child's config saying its architecture;
* the amd64 node pulls the operator and the agent from the indexes and runs an agent Task;
* a step image whose index has only linux/arm64 fails the Task at once (``ImagePullFailed``)
  naming the platforms, with what containerd really says (no exec-format error: nothing
  runs);
* a Task pinned to ``kubernetes.io/arch: arm64`` on this amd64-only cluster stays Pending
  as unschedulable and ends with its timeout, saying it cannot be scheduled.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.cluster import config as cluster_config
from tests.cluster.fixtures import FullCluster
from tests.e2e import chart, deploy, images
from tests.oci_registry import Pusher

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e-platforms"
BUSYBOX = "busybox:1.28"
ARM64_ONLY = "taskflow/arm64-only"
PINNED_TIMEOUT = 20.0  # seconds: the pinned Task's spec.timeout
WAIT = 180.0
INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Installed:
    cluster: FullCluster
    refs: dict[str, str]  # operator=, agent=: the indexes
    arm64_only: str


def _get(registry: str, repository: str, reference: str, accept: str) -> dict[str, Any]:
    url = f"http://{registry}/v2/{repository}/{reference}"
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.load(response)
    return data


def _split(ref: str) -> tuple[str, str, str]:
    """``host:port/repo/name:tag`` -> (host:port, repo/name, tag)."""
    registry, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    return registry, repository, tag


def _push_arm64_only(registry: str) -> str:
    push = Pusher(f"http://{registry}")
    arm = push.image(ARM64_ONLY, None, entrypoint=["/bin/echo", "arm64"], arch="arm64")
    push.index(ARM64_ONLY, "v1", [(*arm, "linux/arm64")])
    return f"{registry}/{ARM64_ONLY}:v1"


def _task(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": TASKS_NS},
        "spec": {"steps": list(steps), **spec},
    }


@pytest.fixture(scope="module")
def installed(full_cluster: FullCluster) -> Iterator[Installed]:
    registry = full_cluster.registry
    if not registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    started = time.monotonic()
    refs = images.build_all(registry, images.PLATFORMS)
    print(f"\nbuilt and pushed in {time.monotonic() - started:.0f}s: {refs}")
    op_registry, op_repository, op_tag = _split(refs["operator"])
    operator = deploy.OperatorImage(
        f"{op_registry}/{op_repository}", op_tag, 0, 0, 0.0, refs["agent"]
    )
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    crds = str(chart.CHART_DIR / "crds")
    deploy.kubectl_out(full_cluster, "apply", "--server-side", "--force-conflicts", "-f", crds)
    proc = deploy.helm_install(full_cluster, operator)
    if proc.returncode != 0:
        diag = deploy.diagnostics(full_cluster, NS, TASKS_NS)
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}\n{diag}")
    yield Installed(full_cluster, refs, _push_arm64_only(registry))
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)


def test_the_pushed_indexes_hold_both_platforms(installed: Installed) -> None:
    for name, ref in installed.refs.items():
        registry, repository, tag = _split(ref)
        index = _get(registry, repository, f"manifests/{tag}", INDEX)
        assert index["mediaType"] == INDEX, name
        platforms = {}
        for child in index["manifests"]:
            p = child["platform"]
            manifest = _get(
                registry, repository, f"manifests/{child['digest']}", child["mediaType"]
            )
            config = _get(registry, repository, f"blobs/{manifest['config']['digest']}", "*/*")
            assert (config["os"], config["architecture"]) == (p["os"], p["architecture"]), name
            size = sum(x["size"] for x in [manifest["config"], *manifest["layers"]])
            platforms[f"{p['os']}/{p['architecture']}"] = size
            print(f"{name} {p['os']}/{p['architecture']}: {size / 1e6:.1f} MB compressed")
        assert sorted(platforms) == ["linux/amd64", "linux/arm64"], name


def _finish(installed: Installed, tasks: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Apply the Tasks; each one's first finished object (and when it was seen)."""
    cluster = installed.cluster
    cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)
    deploy.kubectl_out(cluster, "create", "namespace", TASKS_NS)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(tasks))
    names = {t["metadata"]["name"] for t in tasks}
    done: dict[str, Any] = {}
    seen: dict[str, set[str]] = {n: set() for n in names}
    started = time.monotonic()

    def all_done() -> bool:
        proc = cluster.kubectl("get", "tasks", "-n", TASKS_NS, "-o", "json", check=False)
        for item in json.loads(proc.stdout)["items"] if proc.returncode == 0 else []:
            status = item.get("status") or {}
            name = item["metadata"]["name"]
            for cond in status.get("conditions", []):
                seen[name].add(f"{cond.get('reason')}: {cond.get('message')}")
            if status.get("status") in ("Successful", "Failure") and name not in done:
                done[name] = {**item, "seconds": time.monotonic() - started, "seen": seen[name]}
        return set(done) >= names

    try:
        deploy.wait_for("the platform Tasks to finish", all_done, timeout=timeout)
    except TimeoutError as exc:
        diag = deploy.diagnostics(cluster, NS, TASKS_NS)
        pytest.fail(f"{exc}; finished: {sorted(done)}; seen: {seen}\n{diag}")
    return done


@pytest.fixture(scope="module")
def finished(installed: Installed) -> dict[str, Any]:
    echo = {"name": "a", "image": BUSYBOX, "command": ["sh", "-c", "uname -m"]}
    tasks = [
        _task("amd64-agent", echo, executor="agent"),
        _task(
            "pinned-arm64",
            echo,
            executor="agent",
            timeout=f"{PINNED_TIMEOUT:g}s",
            podTemplate={"nodeSelector": {"kubernetes.io/arch": "arm64"}},
        ),
        _task(
            "arm64-only-image",
            {"name": "a", "image": installed.arm64_only, "command": ["/bin/echo"]},
            executor="kubelet",
        ),
    ]
    return _finish(installed, tasks, WAIT)


def _condition(task: dict[str, Any]) -> dict[str, Any]:
    cond: dict[str, Any] = task["status"]["conditions"][0]
    return cond


def test_the_amd64_node_runs_the_agent_from_the_index(
    installed: Installed, finished: dict[str, Any]
) -> None:
    task = finished["amd64-agent"]
    assert task["status"]["status"] == "Successful", _condition(task)
    pod = task["status"]["podName"]
    logs = installed.cluster.kubectl("logs", "-n", TASKS_NS, pod, "-c", "a").stdout
    assert logs == "x86_64\n"


def test_an_image_without_the_nodes_platform_fails_at_once(finished: dict[str, Any]) -> None:
    task = finished["arm64-only-image"]
    cond = _condition(task)
    print(f"\narm64-only image: {cond['message']}")
    assert (task["status"]["status"], cond["reason"]) == ("Failure", "ImagePullFailed")
    message = cond["message"]
    assert "has no entry for the platform of node" in message
    assert "no match for platform in manifest" in message  # containerd's own words
    assert "exec format error" not in message
    assert task["seconds"] < 60  # not the image-pull timeout's retries


def test_a_task_pinned_to_arm64_cannot_be_scheduled_and_times_out(
    finished: dict[str, Any],
) -> None:
    task = finished["pinned-arm64"]
    cond = _condition(task)
    print(f"\npinned to arm64: {cond['message']} (after {task['seconds']:.0f}s)")
    assert (task["status"]["status"], cond["reason"]) == ("Failure", "TimedOut")
    assert "the pod cannot be scheduled" in cond["message"]
    assert "didn't match Pod's node affinity/selector" in cond["message"]
    assert any(s.startswith("Unschedulable: ") for s in task["seen"])
    assert task["seconds"] < PINNED_TIMEOUT + 30
    assert cluster_config.REGISTRY  # the harness's, whose node is amd64 only
