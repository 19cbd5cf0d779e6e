"""The harness's own behaviour: clear preflight errors, warm cache, a second `up`."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.cluster import binaries, config, harness
from tests.cluster.errors import HarnessError

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
