"""The harness's own behaviour: clear preflight errors, warm cache, a second `up`, loopback
clients, restarts that keep state."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from tests.cluster import binaries, config, harness
from tests.cluster.errors import HarnessError
from tests.cluster.fixtures import kubectl

pytestmark = pytest.mark.integration


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(HarnessError, match=r"root.*--kubeconfig PATH.*KUBECONFIG"):
        harness.preflight("control-plane")


def test_missing_go_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda *_a, **_k: None)
    monkeypatch.setattr(binaries, "GO_FALLBACKS", ())
    with pytest.raises(HarnessError, match=r"Go toolchain.*--kubeconfig PATH or KUBECONFIG"):
        binaries._go()


def test_warm_binary_lookup_is_fast() -> None:
    if binaries.missing_builds():
        pytest.skip("binaries not built yet (cold cache)")
    start = time.monotonic()
    assert binaries.ensure_binaries() == binaries.bin_dir()
    assert time.monotonic() - start < 0.5
    assert (binaries.bin_dir() / "kubectl").is_file()


def test_second_up_says_it_already_runs(kubeconfig: str) -> None:
    info = harness.running()
    if info is None or info.kubeconfig != kubeconfig:
        pytest.skip("not running on the harness cluster")
    out = subprocess.run(
        [sys.executable, "-m", "tests.cluster", "up", "--tier", info.tier],
        cwd=config.REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "already running" in out[0]
    assert out[-1] == f"export KUBECONFIG={kubeconfig}"


def _harness_cluster(kubeconfig: str) -> harness.ClusterInfo:
    info = harness.running()
    if info is None or info.kubeconfig != kubeconfig:
        pytest.skip("not running on the harness cluster")
    return info


def test_host_side_clients_use_loopback_only(kubeconfig: str) -> None:
    _harness_cluster(kubeconfig)
    layout = harness._layout()
    for user in ("admin", "controller-manager", "scheduler", "kube-proxy", "kubelet"):
        doc = yaml.safe_load(layout.kubeconfig(user).read_text())
        assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443", user
    rules = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True)
    guard = [ln for ln in rules.stdout.splitlines() if "--dport 6443" in ln]
    assert any("! -i lo" in ln and "DROP" in ln for ln in guard), guard


def _kubectl(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, *args, check=False, timeout=30)


@pytest.mark.parametrize(("component", "kill"), [("etcd", True), ("kube-apiserver", False)])
def test_restart_keeps_state(kubeconfig: str, component: str, kill: bool) -> None:
    _harness_cluster(kubeconfig)
    name = f"restart-{component}-{int(time.time())}"
    _kubectl(kubeconfig, "create", "configmap", name, "-n", "default", "--from-literal=a=b")
    try:
        args = ["restart", component, *(["--kill"] if kill else [])]
        out = subprocess.run(
            [sys.executable, "-m", "tests.cluster", *args],
            cwd=config.REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        assert "serving again after" in out
        deadline = time.monotonic() + 60  # the API server reconnects to etcd by itself
        while _kubectl(kubeconfig, "get", "configmap", name, "-n", "default").returncode:
            assert time.monotonic() < deadline, f"{name} not readable after {component} restart"
            time.sleep(0.5)
    finally:
        _kubectl(kubeconfig, "delete", "configmap", name, "-n", "default", "--ignore-not-found")


def test_restart_of_an_unknown_component_is_a_clear_error(kubeconfig: str) -> None:
    _harness_cluster(kubeconfig)
    with pytest.raises(HarnessError, match=r"unknown component 'kube-nothing'.*etcd"):
        harness.restart("kube-nothing")
