"""Proof that the harness's control-plane tier is a real API server + controllers."""

from __future__ import annotations

import functools
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.cluster.fixtures import kubectl as run_kubectl
from tests.cluster.fixtures import wait_established

pytestmark = pytest.mark.integration

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.harness.taskflow.test
spec:
  group: harness.taskflow.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
"""


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str) -> Kubectl:
    return functools.partial(run_kubectl, kubeconfig, timeout=120)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"harness-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def _eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def test_serves_a_crd(kubectl: Kubectl, kubeconfig: str, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=CRD)
    wait_established(kubeconfig, "widgets.harness.taskflow.test")
    widget = {
        "apiVersion": "harness.taskflow.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
    }
    # discovery of a fresh CRD can lag a moment behind Established
    _eventually(
        lambda: kubectl("apply", "-f", "-", input=json.dumps(widget), check=False).returncode == 0
    )
    got = json.loads(kubectl("get", "widget", "w1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"] == {"size": 3}
    assert got["metadata"]["uid"]


def test_garbage_collects_an_owned_object(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "owner", "-n", namespace)
    owner = json.loads(kubectl("get", "configmap", "owner", "-n", namespace, "-o", "json").stdout)
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                    "blockOwnerDeletion": True,
                }
            ],
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(dependent))
    kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=background")

    def gone() -> bool:
        res = kubectl("get", "configmap", "dependent", "-n", namespace, check=False)
        return res.returncode != 0 and "NotFound" in res.stderr

    _eventually(gone)
