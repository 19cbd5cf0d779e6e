"""The Helm chart rendered by `helm template` (no cluster): lint, RBAC, Deployment, options.

helm comes from the cluster harness's cache (built alone when absent) or PATH.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import taskflow
from tests.e2e import chart

Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


@pytest.fixture(scope="module")
def default_objects(helm: str) -> Objects:
    return chart.helm_template(helm=helm)


@pytest.fixture(scope="module")
def namespaced_objects(helm: str) -> Objects:
    return chart.helm_template(helm=helm, values_files=[chart.NAMESPACED_VALUES])


def _kinds(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: Objects, kind: str) -> dict[str, Any]:
    found = _kinds(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(objects: Objects) -> dict[str, Any]:
    deployment = _one(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


@pytest.mark.parametrize("values", [None, chart.NAMESPACED_VALUES], ids=["default", "namespaced"])
def test_helm_lint_strict(helm: str, values: Path | None) -> None:
    args = [helm, "lint", "--strict", str(chart.CHART_DIR), "--kube-version", chart.KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout
    assert "[ERROR]" not in proc.stdout


def test_default_rbac_is_exactly_the_design_table(default_objects: Objects) -> None:
    cluster_role = _one(default_objects, "ClusterRole")
    lease_role = _one(default_objects, "Role")
    assert lease_role["metadata"]["namespace"] == "taskflow-system"
    granted = chart.granted_rules([cluster_role, lease_role])
    assert granted == chart.design_rbac()
    # Leases only in the release namespace, nothing about leases cluster-wide.
    assert {r[0] for r in chart.granted_rules([lease_role])} == {"coordination.k8s.io"}
    assert "coordination.k8s.io" not in {r[0] for r in chart.granted_rules([cluster_role])}


def test_default_bindings_name_the_chart_service_account(default_objects: Objects) -> None:
    sa = _one(default_objects, "ServiceAccount")
    binding = _one(default_objects, "ClusterRoleBinding")
    role_binding = _one(default_objects, "RoleBinding")
    for b in (binding, role_binding):
        assert b["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": sa["metadata"]["name"],
                "namespace": "taskflow-system",
            }
        ]
    assert binding["roleRef"]["name"] == _one(default_objects, "ClusterRole")["metadata"]["name"]
    pod_spec = _one(default_objects, "Deployment")["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == sa["metadata"]["name"]


def test_namespaced_rbac_has_nothing_cluster_wide(namespaced_objects: Objects) -> None:
    assert not _kinds(namespaced_objects, "ClusterRole")
    assert not _kinds(namespaced_objects, "ClusterRoleBinding")
    roles = _kinds(namespaced_objects, "Role")
    by_ns: dict[str, Objects] = {}
    for role in roles:
        by_ns.setdefault(role["metadata"]["namespace"], []).append(role)
    assert set(by_ns) == {"team-a", "team-b", "taskflow-system"}
    design = chart.design_rbac()
    without_leases = {r for r in design if r[0] != "coordination.k8s.io"}
    for ns in ("team-a", "team-b"):
        assert chart.granted_rules(by_ns[ns]) == without_leases
    assert chart.granted_rules(by_ns["taskflow-system"]) == design - without_leases
    bindings = {
        (b["metadata"]["namespace"], b["roleRef"]["name"])
        for b in _kinds(namespaced_objects, "RoleBinding")
    }
    assert bindings == {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles}


def test_namespaced_deployment_args(namespaced_objects: Objects) -> None:
    deployment = _one(namespaced_objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    args = _container(namespaced_objects)["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--leader-elect" in args
    assert "--lease-namespace=taskflow-system" in args
    assert "--log-format=json" in args


def test_default_deployment(default_objects: Objects) -> None:
    deployment = _one(default_objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(default_objects)
    assert container["image"] == f"taskflow/operator:{taskflow.__version__}"
    args = container["args"]
    assert "--bind-address=:8080" in args
    assert "--log-format=text" in args
    assert "--log-level=info" in args
    assert not [a for a in args if a.startswith(("--namespace", "--leader-elect"))]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["limits"]["memory"]
    # No credential other than the service account token the kubelet projects.
    assert {v["name"] for v in pod["volumes"]} == {"tmp"}
    assert all("secretKeyRef" not in str(e) for e in container["env"])
    assert "KUBECONFIG" not in {e["name"] for e in container["env"]}


def test_metrics_service_selects_the_operator(default_objects: Objects) -> None:
    service = _one(default_objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    labels = _one(default_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert not _kinds(default_objects, "ServiceMonitor")


def test_helm_test_hook_probes_readyz_through_the_service(default_objects: Objects) -> None:
    pod = _one(default_objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = _one(default_objects, "Service")
    # the Service must not send traffic to the test pod
    assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    assert container["image"] == _container(default_objects)["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    url = container["command"][-1]
    assert url == "http://taskflow-metrics.taskflow-system.svc:8080/readyz"


def test_service_monitor_and_scheduling_options(helm: str) -> None:
    objects = chart.helm_template(
        helm=helm,
        set_values={
            "serviceMonitor.enabled": "true",
            "serviceMonitor.labels.release": "prom",
            "nodeSelector.kubernetes\\.io/os": "linux",
            "tolerations[0].key": "dedicated",
            "tolerations[0].operator": "Exists",
            "image.repository": "registry.example/taskflow",
            "image.tag": "v9",
            "replicas": "3",
            "logLevel": "DEBUG",
        },
    )
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/taskflow:v9"
    assert "--leader-elect" in container["args"]
    assert "--log-level=debug" in container["args"]


def test_values_schema_rejects_a_bad_log_format(helm: str) -> None:
    with pytest.raises(RuntimeError, match="logFormat"):
        chart.helm_template(helm=helm, set_values={"logFormat": "xml"})


@pytest.mark.parametrize("which", ["default", "namespaced"])
def test_rendered_args_are_accepted_by_taskflow_run(
    which: str, default_objects: Objects, namespaced_objects: Objects
) -> None:
    objects = default_objects if which == "default" else namespaced_objects
    _assert_taskflow_run_accepts(_container(objects)["args"])


def _assert_taskflow_run_accepts(args: list[str]) -> None:
    # argparse checks every option before it reaches the trailing --help (then exits 0).
    proc = subprocess.run(
        [*chart.taskflow_command(), "run", *args, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_extra_args_reach_taskflow_run_which_accepts_them(helm: str) -> None:
    objects = chart.helm_template(
        helm=helm,
        set_values={
            "extraArgs[0]": "--image-pull-timeout=120",
            "extraArgs[1]": "--resync-period=300",
        },
    )
    args = _container(objects)["args"]
    assert args[-2:] == ["--image-pull-timeout=120", "--resync-period=300"]
    _assert_taskflow_run_accepts(args)


def test_values_schema_rejects_extra_args_that_are_not_flags(helm: str) -> None:
    with pytest.raises(RuntimeError, match="extraArgs"):
        chart.helm_template(helm=helm, set_values={"extraArgs[0]": "image-pull-timeout"})


def test_task_lifecycle_defaults_reach_taskflow_run(helm: str, default_objects: Objects) -> None:
    assert "--default-timeout=1h" in _container(default_objects)["args"]
    assert not any(a.startswith("--default-ttl") for a in _container(default_objects)["args"])
    objects = chart.helm_template(
        helm=helm, set_values={"defaultTimeout": "0", "defaultTtlAfterFinished": "24h"}
    )
    args = _container(objects)["args"]
    assert "--default-timeout=0" in args
    assert "--default-ttl-after-finished=24h" in args
    _assert_taskflow_run_accepts(args)
    with pytest.raises(RuntimeError, match="defaultTimeout"):
        chart.helm_template(helm=helm, set_values={"defaultTimeout": "one hour"})


def test_executor_and_agent_image_reach_taskflow_run(helm: str, default_objects: Objects) -> None:
    args = _container(default_objects)["args"]
    assert "--default-executor=agent" in args
    assert not any(a.startswith("--agent-image") for a in args)  # the operator's default
    ref = "127.0.0.1:35000/taskflow/agent@sha256:" + "a" * 64
    objects = chart.helm_template(helm=helm, set_values={"executor": "kubelet", "agent.image": ref})
    args = _container(objects)["args"]
    assert "--default-executor=kubelet" in args
    assert f"--agent-image={ref}" in args
    _assert_taskflow_run_accepts(args)
    with pytest.raises(RuntimeError, match="executor"):
        chart.helm_template(helm=helm, set_values={"executor": "docker"})
    with pytest.raises(RuntimeError, match="image"):
        chart.helm_template(helm=helm, set_values={"agent.image": "a b"})


def test_admission_policy_is_installed_unless_turned_off(
    helm: str, default_objects: Objects
) -> None:
    policy = _one(default_objects, "ValidatingAdmissionPolicy")
    binding = _one(default_objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    # too many references for its budget: let the operator's own check fail the Task
    assert policy["spec"]["failurePolicy"] == "Ignore"
    objects = chart.helm_template(helm=helm, set_values={"admissionPolicy": "false"})
    assert not _kinds(objects, "ValidatingAdmissionPolicy")
    assert not _kinds(objects, "ValidatingAdmissionPolicyBinding")


def test_client_limit_values_reach_taskflow_run(helm: str, default_objects: Objects) -> None:
    # unset: the operator chooses (none under API Priority and Fairness, else 50/100)
    assert not any(a.startswith(("--qps", "--burst")) for a in _container(default_objects)["args"])
    objects = chart.helm_template(helm=helm, set_values={"qps": "0", "burst": "20"})
    args = _container(objects)["args"]
    assert "--qps=0" in args  # 0 is a value (no limit), not "unset"
    assert "--burst=20" in args
    _assert_taskflow_run_accepts(args)
