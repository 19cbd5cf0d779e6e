"""Build the pinned Go binaries once per version and find them (plus Debian's) afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import HarnessError


@dataclass(frozen=True)
class GoBuild:
    module_dir: str  # under tests/cluster/
    packages: tuple[str, ...]
    ldflags: str
    cgo: bool = True


def _k8s_ldflags() -> str:
    v = config.K8S_VERSION
    major, minor = v.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={v}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=2026-01-01T00:00:00Z",
        ]
    return " ".join(flags)


K8S_CMDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)

BUILDS: dict[str, GoBuild] = {
    "kubernetes": GoBuild(
        "k8s", tuple(f"k8s.io/kubernetes/cmd/{c}" for c in K8S_CMDS), _k8s_ldflags()
    ),
    "etcd": GoBuild("etcd", ("go.etcd.io/etcd/server/v3",), "-s -w"),
    "helm": GoBuild(
        "helm",
        ("helm.sh/helm/v3/cmd/helm",),
        f"-s -w -X helm.sh/helm/v3/internal/version.version={config.HELM_VERSION}"
        " -X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ),
    "coredns": GoBuild("coredns", (".",), "-s -w", cgo=False),
}

# binary name -> build that produces it
OUTPUTS: dict[str, str] = {
    **{c: "kubernetes" for c in K8S_CMDS},
    "etcd": "etcd",
    "helm": "helm",
    "coredns": "coredns",
}
# go build names a binary after its package's last element
_BUILT_NAME = {"etcd": "server", "coredns": "coredns"}

SYSTEM_BINARIES = ("containerd", "runc", "docker-registry", "buildah", "iptables", "ip")


def bin_dir() -> Path:
    return config.cache_dir() / "bin"


def _stamp() -> dict[str, str]:
    return {
        "kubernetes": config.K8S_VERSION,
        "etcd": config.ETCD_VERSION,
        "helm": config.HELM_VERSION,
        "coredns": config.COREDNS_VERSION,
    }


def _stamp_file() -> Path:
    return bin_dir() / "versions.json"


def _read_stamp() -> dict[str, str]:
    try:
        data = json.loads(_stamp_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def missing_builds() -> list[str]:
    """Builds whose outputs are absent or were built for another version."""
    stamp = _read_stamp()
    want = _stamp()
    out = []
    for build in BUILDS:
        names = [n for n, b in OUTPUTS.items() if b == build]
        if stamp.get(build) != want[build] or not all((bin_dir() / n).is_file() for n in names):
            out.append(build)
    return out


def bin_path(name: str) -> str:
    """Absolute path of a cluster binary: a built one (kubectl, helm, ...) or a system one."""
    if name in OUTPUTS:
        return str(bin_dir() / name)
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        raise HarnessError(
            f"{name!r} not found; install the packages in tests/cluster/apt-packages.txt"
        )
    return found


GO_FALLBACKS = ("/usr/local/go/bin/go",)


def _go() -> str:
    go = shutil.which("go") or next((p for p in GO_FALLBACKS if Path(p).is_file()), None)
    if not go:
        raise HarnessError(
            "the Go toolchain (`go`, >= 1.24) is needed to build the cluster binaries and was "
            "not found on PATH; install Go, or run the tests against an existing cluster "
            "with --kubeconfig PATH or KUBECONFIG=PATH"
        )
    return go


def go_module_file(module: str, version: str, path: str) -> Path:
    """A file of a Go module's source, fetched through the Go module proxy (and cached in
    the module cache like any dependency): for test inputs that upstream only publishes in
    its repository, e.g. a CRD."""
    proc = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=tempfile.gettempdir(),  # outside any go.mod
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise HarnessError(f"go mod download {module}@{version} failed: {proc.stdout}{proc.stderr}")
    found = Path(json.loads(proc.stdout)["Dir"]) / path
    if not found.is_file():
        raise HarnessError(f"{module}@{version} has no {path}")
    return found


def _run_build(name: str, spec: GoBuild, log: Path) -> None:
    out = Path(tempfile.mkdtemp(prefix=f"build-{name}-", dir=config.cache_dir()))
    cmd = [_go(), "build", "-v", "-trimpath", "-ldflags", spec.ldflags, "-o", f"{out}/"]
    env = {
        **os.environ,
        "CGO_ENABLED": "1" if spec.cgo else "0",
        "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -buildvcs=false").strip(),
    }
    start = time.monotonic()
    print(f"[cluster] building {name} ({', '.join(spec.packages)}) ...", flush=True)
    with log.open("a") as logf:
        proc = subprocess.Popen(
            [*cmd, *spec.packages],
            cwd=config.CLUSTER_SRC / spec.module_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for count, line in enumerate(proc.stdout, 1):
            logf.write(line)
            if count % 200 == 0:
                elapsed = time.monotonic() - start
                print(f"[cluster]   {name}: {count} packages, {elapsed:.0f}s", flush=True)
        if proc.wait() != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise HarnessError(f"building {name} failed; see {log}")
    for bname, build in OUTPUTS.items():
        if build == name:
            built = out / _BUILT_NAME.get(bname, bname)
            os.replace(built, bin_dir() / bname)
    shutil.rmtree(out, ignore_errors=True)
    print(f"[cluster] built {name} in {time.monotonic() - start:.0f}s", flush=True)


def ensure_binaries(only: Iterable[str] | None = None) -> Path:
    """Build whatever is missing from the cache; a warm call only stats a few files.
    `only` limits it to some builds: "kubernetes", "etcd", "helm", "coredns"."""
    todo = [b for b in missing_builds() if only is None or b in set(only)]
    if not todo:
        return bin_dir()
    bin_dir().mkdir(parents=True, exist_ok=True)
    log = config.cache_dir() / "build.log"
    print(f"[cluster] cold build of {', '.join(todo)}; log: {log}", file=sys.stderr, flush=True)
    stamp = _read_stamp()
    for name in todo:
        _run_build(name, BUILDS[name], log)
        stamp[name] = _stamp()[name]
        _stamp_file().write_text(json.dumps(stamp, indent=1))
    return bin_dir()
