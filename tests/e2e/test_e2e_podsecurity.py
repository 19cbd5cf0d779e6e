"""Pod Security Admission's `restricted` level on a real node, operator by Helm.

In a namespace labelled `pod-security.kubernetes.io/enforce=restricted`:
- a Task that asks for what `restricted` demands (non-root, seccomp RuntimeDefault, no
  privilege escalation, all capabilities dropped) runs to Successful: nothing taskflow adds
  to the pod (the `/workspace` emptyDir, the scripts' downward-API volume, labels,
  annotations, owner reference) breaks the level;
- a privileged Task is refused by the API server (403): the Task shows the PodSecurity
  message (Pending/FailedCreate) instead of retrying silently, and with `spec.timeout` it
  ends Failure/TimedOut rather than waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.cluster.fixtures import FullCluster
from tests.e2e import deploy

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e-restricted"
WAIT = 120.0  # seconds, per Task
RESTRICTED_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

#: What `restricted` asks of every container.
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
#: ... and of the pod (or of every container): a non-root user, a seccomp profile.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _task(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": TASKS_NS},
        "spec": {"steps": steps, **spec},
    }


COMPLIANT = _task(
    "compliant",
    [
        {
            "name": "write",
            "image": "busybox:1.28",
            "command": ["sh", "-c", "id -u; echo hello > /workspace/out"],
            "securityContext": CONTAINER_SECURITY,
        },
        {
            # a script step: the downward-API volume's file must be executable by uid 65532
            "name": "script",
            "image": "busybox:1.28",
            "script": "cat /workspace/out\n",
            "securityContext": CONTAINER_SECURITY,
        },
    ],
    podTemplate={"securityContext": POD_SECURITY},
)

PRIVILEGED = _task(
    "privileged",
    [
        {
            "name": "a",
            "image": "busybox:1.28",
            "command": ["true"],
            "securityContext": {"privileged": True},
        }
    ],
    timeout="5s",
)


@dataclass
class Env:
    cluster: FullCluster
    applied_at: float

    def status(self, name: str) -> dict[str, Any]:
        task = deploy.kubectl_json(self.cluster, "get", "task", name, "-n", TASKS_NS)
        return task.get("status") or {}

    def condition(self, name: str) -> dict[str, Any]:
        st = self.status(name)
        return next((c for c in st.get("conditions", []) if c["type"] == "Succeeded"), {})

    def wait(self, what: str, probe: Any) -> float:
        try:
            return deploy.wait_for(what, probe, timeout=WAIT, interval=0.5)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{deploy.diagnostics(self.cluster, NS, TASKS_NS)}")


@pytest.fixture(scope="module")
def env(full_cluster: FullCluster) -> Iterator[Env]:
    if not full_cluster.registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    image = deploy.build_and_push(full_cluster.registry)
    proc = deploy.helm_install(full_cluster, image)
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}")
    cluster = full_cluster
    cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", "--wait=true")
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": TASKS_NS, "labels": RESTRICTED_LABELS},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(COMPLIANT))
    try:
        yield Env(cluster, time.monotonic())
    finally:
        cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)
        cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)


def test_a_compliant_task_runs_under_restricted(env: Env) -> None:
    env.wait(
        "Task compliant to finish",
        lambda: env.status("compliant").get("status") in ("Successful", "Failure"),
    )
    took = time.monotonic() - env.applied_at
    st = env.status("compliant")
    assert st["status"] == "Successful", env.condition("compliant")
    print(f"restricted: compliant Task Successful {took:.1f}s after apply")
    pod = st["podName"]
    out = deploy.kubectl_out(env.cluster, "logs", "-n", TASKS_NS, pod, "-c", "script")
    assert out.strip() == "hello"
    uid = deploy.kubectl_out(env.cluster, "logs", "-n", TASKS_NS, pod, "-c", "write")
    assert uid.strip() == "65532"


def test_a_privileged_task_shows_the_podsecurity_message_then_times_out(env: Env) -> None:
    # Applied here, not with the others: its 5 s must not pass while another test waits.
    env.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(PRIVILEGED))
    applied_at = time.monotonic()
    seen: list[dict[str, Any]] = []

    def refused() -> bool:
        st = env.status("privileged")
        seen.append(st)
        return st.get("status") in ("Failure", "Successful") or any(
            c.get("reason") == "FailedCreate" for c in st.get("conditions", [])
        )

    env.wait("Task privileged to show why it has no pod", refused)
    st = seen[-1]
    cond = next(c for c in st["conditions"] if c["type"] == "Succeeded")
    assert (st["status"], cond["reason"]) == ("Pending", "FailedCreate"), st
    assert 'violates PodSecurity "restricted' in cond["message"], cond
    assert "privileged" in cond["message"]
    # The first refusal is an Event too.
    events = deploy.kubectl_json(
        env.cluster,
        "get",
        "events",
        "-n",
        TASKS_NS,
        "--field-selector",
        "involvedObject.name=privileged,reason=FailedCreate",
    )["items"]
    assert events, "no FailedCreate event"
    assert "PodSecurity" in events[0]["message"]
    env.wait(
        "Task privileged to time out",
        lambda: env.status("privileged").get("status") in ("Failure", "Successful"),
    )
    took = time.monotonic() - applied_at
    st = env.status("privileged")
    cond = env.condition("privileged")
    assert (st["status"], cond["reason"]) == ("Failure", "TimedOut"), cond
    assert "within 5s (spec.timeout)" in cond["message"]
    assert "podName" not in st
    print(f"restricted: privileged Task Failure/TimedOut {took:.1f}s after apply (timeout 5s)")
    pods = deploy.kubectl_json(
        env.cluster, "get", "pods", "-n", TASKS_NS, "-l", "api.practice.com/task=privileged"
    )["items"]
    assert pods == []


def test_the_operators_own_pod_passes_restricted(env: Env) -> None:
    """The chart's defaults would run the operator in a `restricted` namespace too: its pod
    template, as installed, is accepted there by a server-side dry run (PodSecurity admission
    runs on dry runs)."""
    deployment = deploy.kubectl_json(env.cluster, "get", "deployment", deploy.RELEASE, "-n", NS)
    spec = deployment["spec"]["template"]["spec"]
    spec.pop("serviceAccountName", None)  # lives in the release namespace, not this one
    spec.pop("serviceAccount", None)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-restricted-check", "namespace": TASKS_NS},
        "spec": spec,
    }
    proc = env.cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
