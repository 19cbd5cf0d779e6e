"""Proof that the harness's full tier runs real pods: kubelet, containerd, registry, DNS."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fixtures import FullCluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ns(full_cluster: FullCluster) -> Iterator[str]:
    name = f"harness-e2e-{uuid.uuid4().hex[:6]}"
    full_cluster.kubectl("create", "namespace", name)
    yield name
    full_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> str:
    body = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, **spec}
    body["containers"] = containers
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body})


def _wait_phase(fc: FullCluster, ns: str, name: str, phase: str, timeout: int = 120) -> None:
    fc.kubectl(
        "wait", "-n", ns, f"pod/{name}", f"--for=jsonpath={{.status.phase}}={phase}",
        f"--timeout={timeout}s",
    )  # fmt: skip


def test_init_containers_run_in_order_and_keep_their_logs(
    full_cluster: FullCluster, ns: str
) -> None:
    def step(name: str) -> dict[str, Any]:
        script = f"echo {name} >> /work/order; echo {name}-output; cat /work/order"
        return {
            "name": name,
            "image": "busybox:1.28",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        }

    manifest = _pod(
        "ordered",
        [step("main")],
        initContainers=[step("first"), step("second"), step("third")],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    full_cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    _wait_phase(full_cluster, ns, "ordered", "Succeeded")
    seen: list[str] = []
    for name in ("first", "second", "third", "main"):
        seen.append(name)
        logs = full_cluster.kubectl("logs", "-n", ns, "ordered", "-c", name).stdout.split()
        assert logs == [f"{name}-output", *seen]


def test_missing_image_reports_pull_errors(full_cluster: FullCluster, ns: str) -> None:
    manifest = _pod("missing", [{"name": "c", "image": "busybox:no-such-tag-here"}])
    full_cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    deadline = time.monotonic() + 90
    reasons: set[str] = set()
    while time.monotonic() < deadline and not reasons & {"ErrImagePull", "ImagePullBackOff"}:
        pod = json.loads(full_cluster.kubectl("get", "-n", ns, "pod/missing", "-o", "json").stdout)
        for cs in pod.get("status", {}).get("containerStatuses", []):
            waiting = cs.get("state", {}).get("waiting") or {}
            reasons.add(waiting.get("reason", ""))
        time.sleep(1)
    assert reasons & {"ErrImagePull", "ImagePullBackOff"}, reasons


def test_pod_reaches_the_api_server_through_the_kubernetes_service(
    full_cluster: FullCluster, ns: str
) -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    review = '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}'
    script = (
        'echo "host=$KUBERNETES_SERVICE_HOST"; '
        "wget -q -O- --header 'Content-Type: application/json' "
        f'--header "Authorization: Bearer $(cat {token})" '
        f"--post-data '{review}' "
        "https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews"
    )
    manifest = _pod(
        "apiclient", [{"name": "c", "image": "busybox:1.28", "command": ["sh", "-c", script]}]
    )
    full_cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    _wait_phase(full_cluster, ns, "apiclient", "Succeeded")
    out = full_cluster.kubectl("logs", "-n", ns, "apiclient").stdout
    assert "host=" in out
    assert "host=\n" not in out
    # the API server authenticated the pod's own service-account token
    assert f"system:serviceaccount:{ns}:default" in out


def test_stand_in_images(full_cluster: FullCluster, ns: str) -> None:
    job = {"name": "job", "image": "devopscube/kubernetes-job-demo:latest", "args": ["2"]}
    full_cluster.kubectl("apply", "-n", ns, "-f", "-", input=_pod("jobdemo", [job]))
    alpine = {"name": "a", "image": "alpine:3.12", "command": ["cat", "/etc/alpine-release"]}
    full_cluster.kubectl("apply", "-n", ns, "-f", "-", input=_pod("alpine", [alpine]))
    _wait_phase(full_cluster, ns, "jobdemo", "Succeeded")
    _wait_phase(full_cluster, ns, "alpine", "Succeeded")
    lines = full_cluster.kubectl("logs", "-n", ns, "jobdemo").stdout.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("1")
    assert lines[2].startswith("2")
    assert full_cluster.kubectl("logs", "-n", ns, "alpine").stdout.startswith("3.12")


def test_build_image_from_a_containerfile(
    full_cluster: FullCluster, ns: str, tmp_path: Path
) -> None:
    (tmp_path / "Containerfile").write_text(
        "FROM busybox:1.28 AS base\n"
        "ARG GREETING=unset\n"
        'RUN echo "$GREETING from a RUN step" > /greeting\n'
        "FROM base AS final\n"
        'CMD ["cat", "/greeting"]\n'
    )
    tag = f"harness-proof:{uuid.uuid4().hex[:6]}"
    ref = full_cluster.build_image(
        tmp_path, tag=tag, target="final", build_args={"GREETING": "hello"}
    )
    assert ref == f"{full_cluster.registry}/{tag}"
    full_cluster.kubectl(
        "apply", "-n", ns, "-f", "-", input=_pod("built", [{"name": "c", "image": ref}])
    )
    _wait_phase(full_cluster, ns, "built", "Succeeded")
    assert full_cluster.kubectl("logs", "-n", ns, "built").stdout.strip() == "hello from a RUN step"
