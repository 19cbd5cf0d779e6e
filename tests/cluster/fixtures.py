"""What tests/conftest.py's session fixtures hand out, and who stops the cluster afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config, harness
from .binaries import bin_path

REGISTRY_ENV = "TASKFLOW_TEST_REGISTRY"  # registry of an existing cluster, for build_image


def tool(name: str) -> str:
    built = Path(bin_path(name))
    return str(built) if built.is_file() else (shutil.which(name) or name)


def kubectl(
    kubeconfig: str,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 180,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the built kubectl against ``kubeconfig`` (text output captured); with ``check``,
    a non-zero exit raises AssertionError carrying kubectl's output."""
    proc = subprocess.run(
        [tool("kubectl"), *args],
        env={**os.environ, **(env or {}), "KUBECONFIG": kubeconfig},
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def table(output: str) -> list[dict[str, str]]:
    """Rows of kubectl's default table output as {COLUMN: cell}; columns are cut at the
    header's word positions, so empty cells (a field not set) read as ""."""
    header, *rows = output.rstrip("\n").splitlines()
    words = header.split()
    starts = [header.index(word) for word in words]
    ends = [*starts[1:], None]
    return [
        {w: row[a:b].strip() for w, a, b in zip(words, starts, ends, strict=True)} for row in rows
    ]


def wait_established(kubeconfig: str, crd: str, within: float = 60) -> None:
    """Wait for a CRD's Established condition. `kubectl wait --for=condition` (and a jsonpath
    query) fail outright while a just-created CRD has no conditions at all, so poll."""
    query = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + within
    while kubectl(kubeconfig, "get", f"crd/{crd}", "-o", query, check=False).stdout != "True":
        assert time.monotonic() < deadline, f"CRD {crd} not Established within {within:g} s"
        time.sleep(0.2)


@dataclass
class FullCluster:
    """A cluster with a node: the harness's full tier or an existing one (--kubeconfig)."""

    kubeconfig: str
    registry: str  # host:port that build_image pushes to and pods can pull from
    env: dict[str, str] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig, **self.env}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl()` against this cluster."""
        return kubectl(
            self.kubeconfig, *args, input=input, check=check, timeout=timeout, env=self.env
        )

    def helm(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against this cluster (helm's caches under the state dir)."""
        home = config.cache_root() / "helm-home"
        env = {
            **self._env(),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        return subprocess.run(
            [tool("helm"), *args],
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def build_image(
        self,
        context_dir: str | Path,
        containerfile: str | Path = "Containerfile",
        *,
        tag: str,
        target: str | None = None,
        build_args: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> str:
        """Build with buildah and push to this cluster's registry; returns the image ref."""
        if not self.registry:
            import pytest

            pytest.skip(f"no registry for this cluster: set {REGISTRY_ENV}=host:port")
        from .images import build_containerfile

        return build_containerfile(
            context_dir,
            containerfile,
            target,
            tag,
            build_args,
            registry=self.registry,
            extra_args=extra_args,
        )


class ClusterSession:
    """Finds or starts a cluster for one pytest session; stops only what it started."""

    def __init__(self, explicit_kubeconfig: str | None) -> None:
        self.explicit = explicit_kubeconfig
        self.started = False

    def _start(self, tier: str, running: harness.ClusterInfo | None) -> harness.ClusterInfo:
        """Start `tier`, or extend a running control plane (whose owner keeps it)."""
        info = harness.up(tier, owner=f"pytest:{os.getpid()}")
        if running is None and not self.started:
            self.started = True
            _start_reaper(os.getpid())
        return info

    def kubeconfig(self) -> str:
        if self.explicit:
            return self.explicit
        info = harness.running()
        return (info or self._start("control-plane", None)).kubeconfig

    def full(self) -> FullCluster:
        if self.explicit:
            return FullCluster(self.explicit, os.environ.get(REGISTRY_ENV, ""))
        info = harness.running()
        if info is None or info.tier != "full":
            info = self._start("full", info)
        return FullCluster(info.kubeconfig, info.registry or "")

    def close(self) -> None:
        """Stop the cluster this session started (not one someone else has since started)."""
        if self.started:
            self.started = False
            harness.down(owner=f"pytest:{os.getpid()}")


def _start_reaper(pid: int) -> None:
    """A detached watcher that runs `down` if this pytest process dies without cleaning up."""
    subprocess.Popen(
        [sys.executable, "-m", "tests.cluster", "reap-after", str(pid)],
        cwd=config.REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
