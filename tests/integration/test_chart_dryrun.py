"""`helm template` output accepted by a real kube-apiserver, and its RBAC doing what it says.

Default values and the namespaced-scope values file are rendered and sent as a server-side
dry run (the CRD applied first). Then the RBAC objects are created for real and checked with
`kubectl auth can-i` as the chart's service account: every call in docs/design.md's table is
allowed, a few neighbouring ones are not.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.binaries import go_module_file
from tests.cluster.fixtures import kubectl, wait_established
from tests.e2e import chart

pytestmark = pytest.mark.integration


def _kubectl(
    kubeconfig: str, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, *args, input=input, check=check, timeout=120)


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


@pytest.fixture(scope="module")
def crd_applied(kubeconfig: str) -> None:
    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(chart.CRD_PATH))
    wait_established(kubeconfig, "tasks.api.practice.com")


#: prometheus-operator publishes its CRDs only in its repository (pinned here).
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"


@pytest.fixture(scope="module")
def servicemonitor_crd(kubeconfig: str) -> None:
    crd = go_module_file(*PROMETHEUS_OPERATOR, SERVICEMONITOR_CRD)
    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
    wait_established(kubeconfig, "servicemonitors.monitoring.coreos.com")


@pytest.fixture
def namespaces(kubeconfig: str) -> Iterator[dict[str, str]]:
    """Fresh namespaces standing in for the release namespace and the watched ones."""
    suffix = uuid.uuid4().hex[:6]
    names = {
        "release": f"tf-sys-{suffix}",
        "team-a": f"tf-a-{suffix}",
        "team-b": f"tf-b-{suffix}",
    }
    for ns in names.values():
        _kubectl(kubeconfig, "create", "namespace", ns)
    try:
        yield names
    finally:
        _kubectl(kubeconfig, "delete", "namespace", *names.values(), "--wait=false", check=False)


def _release(namespaces: dict[str, str]) -> str:
    return f"tf-{namespaces['release'][-6:]}"


def _render(
    helm: str,
    namespaces: dict[str, str],
    *,
    namespaced: bool = False,
    sets: dict[str, str] | None = None,
) -> str:
    """The chart for a release in ``namespaces["release"]``; ``namespaced``: the namespaced
    values file, watching team-a and team-b."""
    values = [chart.NAMESPACED_VALUES] if namespaced else []
    sets = dict(sets or {})
    if namespaced:
        sets["watchNamespaces[0]"] = namespaces["team-a"]
        sets["watchNamespaces[1]"] = namespaces["team-b"]
    objects = chart.helm_template(
        helm=helm,
        release=_release(namespaces),
        namespace=namespaces["release"],
        values_files=values,
        set_values=sets,
    )
    return yaml.safe_dump_all(objects)


def _dry_run(kubeconfig: str, manifest: str) -> list[str]:
    # strict: a field the server does not know (a typo) is an error, not silently dropped
    proc = _kubectl(
        kubeconfig,
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-o",
        "name",
        "-f",
        "-",
        input=manifest,
    )
    return proc.stdout.split()


def _can(kubeconfig: str, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    proc = _kubectl(kubeconfig, *args, check=False)
    return proc.stdout.strip() == "yes"


def _check_design_verbs(
    kubeconfig: str, sa: str, task_ns: str | None, lease_ns: str, allowed: bool = True
) -> None:
    for group, resource, verbs in sorted(chart.design_rbac(), key=str):
        ns = lease_ns if group == "coordination.k8s.io" else task_ns
        for verb in sorted(verbs):
            base, _, sub = resource.partition("/")
            target = f"{base}.{group}" if group else base
            args = ["auth", "can-i", verb, target, f"--as={sa}"]
            if sub:
                args.append(f"--subresource={sub}")
            args += ["-n", ns] if ns else ["--all-namespaces"]
            answer = _kubectl(kubeconfig, *args, check=False).stdout.strip()
            assert (answer == "yes") == allowed, f"can-i {' '.join(args)} -> {answer}"


def _create_rbac(kubeconfig: str, manifest: str) -> list[dict[str, Any]]:
    rbac = [
        o
        for o in yaml.safe_load_all(manifest)
        if o
        and o["kind"]
        in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    ]
    _kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    return rbac


def _delete(kubeconfig: str, objects: list[dict[str, Any]]) -> None:
    _kubectl(
        kubeconfig,
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
        check=False,
    )


@pytest.mark.usefixtures("crd_applied")
def test_default_values_pass_server_side_dry_run(
    kubeconfig: str, helm: str, namespaces: dict[str, str]
) -> None:
    accepted = _dry_run(kubeconfig, _render(helm, namespaces))
    kinds = sorted(name.split("/")[0] for name in accepted)
    assert kinds == sorted(
        [
            "clusterrole.rbac.authorization.k8s.io",
            "clusterrolebinding.rbac.authorization.k8s.io",
            "deployment.apps",
            "pod",  # the `helm test` hook
            "role.rbac.authorization.k8s.io",
            "rolebinding.rbac.authorization.k8s.io",
            "service",
            "serviceaccount",
            # the result-reference admission policy and its binding
            "validatingadmissionpolicy.admissionregistration.k8s.io",
            "validatingadmissionpolicybinding.admissionregistration.k8s.io",
        ]
    )


@pytest.mark.usefixtures("crd_applied")
def test_namespaced_values_pass_server_side_dry_run(
    kubeconfig: str, helm: str, namespaces: dict[str, str]
) -> None:
    accepted = _dry_run(kubeconfig, _render(helm, namespaces, namespaced=True))
    assert not [n for n in accepted if n.startswith("clusterrole")]
    assert sum(n.startswith("role.rbac") for n in accepted) == 3
    assert sum(n.startswith("rolebinding.rbac") for n in accepted) == 3


@pytest.mark.usefixtures("crd_applied")
def test_cluster_scope_rbac_grants_exactly_the_design_calls(
    kubeconfig: str, helm: str, namespaces: dict[str, str]
) -> None:
    ns = namespaces["release"]
    release = _release(namespaces)
    rbac = _create_rbac(kubeconfig, _render(helm, namespaces))
    try:
        sa = f"system:serviceaccount:{ns}:{release}-taskflow"
        _check_design_verbs(kubeconfig, sa, None, ns)
        # Neighbours of what is granted stay denied.
        for verb, resource, where in [
            ("delete", "pods", None),
            ("update", "pods", None),
            ("list", "secrets", None),  # get only: the pull secrets a Task names
            ("watch", "secrets", None),
            ("create", "secrets", None),
            ("update", "tasks.api.practice.com", None),
            ("patch", "tasks.api.practice.com", None),
            ("deletecollection", "pods", None),
            ("create", "tasks.api.practice.com", None),
            ("get", "leases.coordination.k8s.io", namespaces["team-a"]),
            ("delete", "leases.coordination.k8s.io", ns),
            ("create", "clusterrolebindings", None),
        ]:
            assert not _can(kubeconfig, sa, verb, resource, where), (verb, resource, where)
    finally:
        _delete(kubeconfig, rbac)


@pytest.mark.usefixtures("crd_applied")
def test_namespaced_rbac_is_confined_to_the_watched_namespaces(
    kubeconfig: str, helm: str, namespaces: dict[str, str]
) -> None:
    ns = namespaces["release"]
    release = _release(namespaces)
    rbac = _create_rbac(kubeconfig, _render(helm, namespaces, namespaced=True))
    try:
        sa = f"system:serviceaccount:{ns}:{release}-taskflow"
        for watched in (namespaces["team-a"], namespaces["team-b"]):
            _check_design_verbs(kubeconfig, sa, watched, ns)
        assert not _can(kubeconfig, sa, "list", "tasks.api.practice.com", None)
        assert not _can(kubeconfig, sa, "list", "pods", "default")
        assert not _can(kubeconfig, sa, "create", "pods", ns)
        assert not _can(kubeconfig, sa, "get", "secrets", "default")
    finally:
        _delete(kubeconfig, rbac)


@pytest.mark.usefixtures("servicemonitor_crd")
def test_service_monitor_fits_the_prometheus_operator_crd(
    kubeconfig: str, helm: str, namespaces: dict[str, str]
) -> None:
    manifest = _render(
        helm,
        namespaces,
        sets={"serviceMonitor.enabled": "true", "serviceMonitor.labels.release": "prom"},
    )
    monitors = [o for o in yaml.safe_load_all(manifest) if o and o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 1
    accepted = _dry_run(kubeconfig, yaml.safe_dump(monitors[0]))
    assert accepted == [f"servicemonitor.monitoring.coreos.com/{_release(namespaces)}-taskflow"]
