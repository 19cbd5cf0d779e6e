"""The Helm chart's static parts: metadata, the generated CRD, values files (no helm needed)."""

from __future__ import annotations

from typing import Any

import yaml

import taskflow
from tests.e2e import chart


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((chart.CHART_DIR / name).read_text())
    assert isinstance(data, dict)
    return data


def test_app_version_is_the_package_version() -> None:
    meta = _load("Chart.yaml")
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "taskflow"
    assert meta["appVersion"] == taskflow.__version__
    assert meta["kubeVersion"].startswith(">=1.27")


def test_crd_in_chart_is_byte_identical_to_taskflow_crd() -> None:
    expected = chart.taskflow_crd_output()
    actual = chart.CRD_PATH.read_bytes()
    assert actual == expected, (
        f"{chart.CRD_PATH.relative_to(chart.ROOT)} is stale: regenerate it with "
        "`nox -s crd` (python -m tests.e2e.chart write-crd)"
    )


def test_admission_policy_in_chart_is_taskflow_policy_guarded() -> None:
    actual = chart.POLICY_PATH.read_bytes()
    assert actual == chart.policy_template(), (
        f"{chart.POLICY_PATH.relative_to(chart.ROOT)} is stale: regenerate it with `nox -s crd`"
    )


def test_crd_directory_holds_only_the_task_crd() -> None:
    files = sorted(p.name for p in chart.CRD_PATH.parent.iterdir())
    assert files == [chart.CRD_PATH.name]
    crd = yaml.safe_load(chart.CRD_PATH.read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "tasks.api.practice.com"


def test_default_values_are_locked_down() -> None:
    values = _load("values.yaml")
    assert values["replicas"] == 1
    assert values["watchNamespaces"] == []
    assert values["serviceMonitor"]["enabled"] is False
    pod = values["podSecurityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctr = values["securityContext"]
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert values["resources"]["limits"]["memory"]
    assert values["resources"]["requests"]["cpu"]


def test_namespaced_values_file_sets_namespaces_and_replicas() -> None:
    values = yaml.safe_load(chart.NAMESPACED_VALUES.read_text())
    assert values["watchNamespaces"]
    assert values["replicas"] > 1


def test_design_rbac_table_parses() -> None:
    rules = chart.design_rbac()
    resources = {(group, resource) for group, resource, _ in rules}
    assert resources == {
        ("api.practice.com", "tasks"),
        ("api.practice.com", "tasks/status"),
        ("api.practice.com", "tasks/finalizers"),
        ("", "pods"),
        ("", "events"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("coordination.k8s.io", "leases"),
    }
