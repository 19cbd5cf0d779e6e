"""``taskflow run`` as a process against a server that is not there: /healthz answers,
/readyz says not ready, and the operator exits 1 (StreamFailed) once its watch streams have
failed for longer than their threshold. Loopback only: no API server at all."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.loopback


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


def wait_until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_unrecoverable_stream_exits_non_zero(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dead",
                "cluster": {
                    "server": f"https://127.0.0.1:{dead}",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
        "current-context": "dead",
    }
    kc = tmp_path / "kubeconfig"
    kc.write_text(yaml.safe_dump(config))
    port = free_port()
    args = ["--kubeconfig", str(kc), "--bind-address", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskflow", "run", *args, "--stream-failure-threshold", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/healthz") != 0, 10)
        assert http_status(f"http://127.0.0.1:{port}/readyz") == 500
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out
    assert "StreamFailed" in out
