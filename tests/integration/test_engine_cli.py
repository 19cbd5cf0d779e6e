"""``taskflow run`` as a process: readiness, graceful SIGTERM (lease released, exit 0 well
within 10 s), against the control-plane tier (the exit when no server answers: tests/loopback)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.fixtures import kubectl as run_kubectl
from tests.cluster.fixtures import wait_established

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_until(check: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    return run_kubectl(kubeconfig, *args, input=stdin, timeout=60).stdout


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    name = f"tf-cli-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    yield name
    run_kubectl(kubeconfig, "delete", "namespace", name, "--wait=false", check=False)


def taskflow(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_run_serves_probes_and_stops_gracefully_on_sigterm(kubeconfig: str, namespace: str) -> None:
    crd = subprocess.run(
        [sys.executable, "-m", "taskflow", "crd"], capture_output=True, text=True, check=True
    ).stdout
    kubectl(kubeconfig, "apply", "-f", "-", stdin=crd)
    wait_established(kubeconfig, "tasks.api.practice.com")
    port = free_port()
    proc = taskflow(
        "run",
        "--kubeconfig",
        kubeconfig,
        "-n",
        namespace,
        "--bind-address",
        f"127.0.0.1:{port}",
        "--leader-elect",
        "--lease-namespace",
        namespace,
        "--log-format",
        "json",
    )
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200, 20)
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        wait_until(
            lambda: "taskflow-leader" in kubectl(kubeconfig, "get", "lease", "-n", namespace), 10
        )
        holder = kubectl(
            kubeconfig,
            "get",
            "lease",
            "taskflow-leader",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        )
        assert holder
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert elapsed < 10
    lines = [yaml.safe_load(line) for line in out.splitlines() if line.startswith("{")]
    assert any("SIGTERM" in doc["msg"] for doc in lines), out
    lease = yaml.safe_load(
        kubectl(kubeconfig, "get", "lease", "taskflow-leader", "-n", namespace, "-o", "yaml")
    )
    assert lease["spec"].get("holderIdentity", "") == ""  # released
