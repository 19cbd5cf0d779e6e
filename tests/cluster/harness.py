"""up / down / status of the local cluster; the CLI and the pytest fixtures both use this."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import binaries, config, controlplane, hostsys, pki
from .errors import HarnessError
from .layout import Layout
from .procs import Procs

# stop order: node first, then the control plane (etcd last)
STOP_ORDER = (
    "kube-proxy",
    "kubelet",
    "containerd",
    "kube-scheduler",
    "registry",
    "auth-registry",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)
USE_EXISTING = (
    "To run the tests against an existing cluster instead, pass --kubeconfig PATH to pytest "
    "or set KUBECONFIG=PATH."
)


@dataclass(frozen=True)
class ClusterInfo:
    tier: str
    state_dir: Path
    kubeconfig: str
    registry: str | None
    owner: str


def _layout() -> Layout:
    return Layout(config.state_dir())


def read_state(layout: Layout | None = None) -> dict[str, Any] | None:
    layout = layout or _layout()
    try:
        data = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(layout: Layout, state: dict[str, Any]) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, layout.state_file)


def _info(layout: Layout, state: dict[str, Any]) -> ClusterInfo:
    return ClusterInfo(
        tier=str(state.get("tier")),
        state_dir=layout.root,
        kubeconfig=str(layout.admin_kubeconfig),
        registry=config.REGISTRY if state.get("tier") == "full" else None,
        owner=str(state.get("owner", "")),
    )


def running() -> ClusterInfo | None:
    """The harness cluster if one is up (its state says ready and its apiserver lives)."""
    layout = _layout()
    state = read_state(layout)
    if not state or not state.get("ready"):
        return None
    if not Procs(layout.root).alive("kube-apiserver"):
        return None
    return _info(layout, state)


def preflight(tier: str) -> None:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network interface, iptables, cgroups and mounts need it)")
    if tier == "full":
        if (
            not any(Path("/sys/fs/cgroup").glob("*/cgroup.procs"))
            and not Path("/sys/fs/cgroup/cgroup.procs").exists()
        ):
            missing.append("mounted cgroups (/sys/fs/cgroup)")
        for name in ("containerd", "runc", "docker-registry", "buildah", "iptables", "busybox"):
            try:
                binaries.bin_path(name)
            except HarnessError:
                missing.append(f"`{name}` (apt-get install $(cat tests/cluster/apt-packages.txt))")
        if not Path("/usr/lib/cni/bridge").exists():
            missing.append("CNI plugins in /usr/lib/cni (containernetworking-plugins)")
    if shutil.which("ip") is None:
        missing.append("`ip` (iproute2)")
    if shutil.which("openssl") is None:
        missing.append("`openssl`")
    if missing:
        raise HarnessError(
            "cannot start the local cluster; missing: " + "; ".join(missing) + ". " + USE_EXISTING
        )


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One up/down at a time on this machine (addresses and ports are machine-wide)."""
    path = Path("/run/lock" if Path("/run/lock").is_dir() else "/tmp") / "taskflow-cluster.lock"
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(tier: str = "control-plane", owner: str = "cli") -> ClusterInfo:
    """Start (or extend to) `tier`; return at once if that tier already runs."""
    if tier not in config.TIERS:
        raise HarnessError(f"unknown tier {tier!r}; use one of {config.TIERS}")
    with machine_lock():
        return _up(tier, owner)


def _up(tier: str, owner: str) -> ClusterInfo:
    layout = _layout()
    current = running()
    if current is not None and (current.tier == "full" or tier == current.tier):
        return current
    preflight(tier)
    if current is None and Path(f"/sys/class/net/{config.NODE_IFACE}").exists():
        raise HarnessError(
            f"interface {config.NODE_IFACE} exists but {layout.root} has no running cluster: "
            "another harness cluster (other TASKFLOW_CLUSTER_DIR?) seems to run on this machine; "
            "stop it with its own `python -m tests.cluster down`"
        )
    binaries.ensure_binaries()
    if tier == "full":
        from . import images

        images.ensure_seed()
    procs = Procs(layout.root)
    start = time.monotonic()
    print(f"[cluster] starting the {tier} tier (state: {layout.root})", file=sys.stderr, flush=True)
    try:
        if current is None:
            _down(quiet=True)  # stale leftovers of a crashed run
            state: dict[str, Any] = {
                "tier": "starting",
                "owner": owner,
                "ready": False,
                "sysctls": hostsys.save_sysctls(),
                "new_dirs": [d for d in hostsys.HOST_DIRS if not Path(d).exists()],
                "started": time.time(),
            }
            _write_state(layout, state)
            hostsys.reserve_ports(config.RESERVED_PORTS)
            pki.generate(layout.pki)
            layout.write_kubeconfigs()
            hostsys.add_node_interface()
            controlplane.up(layout, procs)
            state.update(tier="control-plane", ready=True)
            _write_state(layout, state)
        else:
            state = read_state(layout) or {}
        if tier == "full":
            from . import node

            state.update(tier="full-starting", ready=False)
            _write_state(layout, state)
            node.up(layout, procs)
            state.update(tier="full", ready=True)
            _write_state(layout, state)
    except BaseException:
        _save_failure_logs(layout)
        if not os.environ.get("TASKFLOW_CLUSTER_KEEP_FAILED"):  # debugging aid
            _down(quiet=True)
        raise
    state["up_seconds"] = round(time.monotonic() - start, 1)
    _write_state(layout, state)
    return _info(layout, state)


def _save_failure_logs(layout: Layout) -> None:
    dest = config.cache_root() / "last-failure-logs"
    with contextlib.suppress(OSError):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(layout.root / "logs", dest)
        print(f"[cluster] start failed; component logs kept in {dest}")


#: component -> (what, check) that says it serves again after a restart
def _ready_checks(layout: Layout) -> dict[str, tuple[str, Callable[[], bool]]]:
    from .kapi import Api
    from .procs import http_answers, http_ok

    api = Api(layout)
    return {
        "etcd": ("etcd /health", lambda: http_ok(f"http://127.0.0.1:{config.ETCD_PORT}/health")),
        "kube-apiserver": ("kube-apiserver /readyz", api.healthy),
        "registry": ("registry", lambda: http_ok(f"http://{config.REGISTRY}/v2/")),
        "auth-registry": (
            "auth registry",
            lambda: http_answers(f"http://{config.AUTH_REGISTRY}/v2/"),
        ),
        "containerd": (
            "containerd socket",
            lambda: (layout.root / "containerd" / "containerd.sock").exists(),
        ),
        "kubelet": ("kubelet /healthz", lambda: http_ok("http://127.0.0.1:10248/healthz")),
        "kube-proxy": ("kube-proxy /healthz", lambda: http_ok("http://127.0.0.1:10256/healthz")),
    }


def restart(component: str, *, kill: bool = False) -> float:
    """Restart one component of the running cluster, keeping all state (etcd's data, the
    kubelet's pods, containerd's containers): for failure tests. `kill`: SIGKILL, no
    graceful shutdown. Returns the seconds until it served again."""
    with machine_lock():
        layout = _layout()
        if read_state(layout) is None:
            raise HarnessError(f"no local cluster runs (state dir: {layout.root})")
        procs = Procs(layout.root)
        if component not in procs.names():
            known = ", ".join(sorted(procs.names()))
            raise HarnessError(f"unknown component {component!r}; this cluster runs: {known}")
        start = time.monotonic()
        procs.restart(component, kill=kill)
        what, check = _ready_checks(layout).get(component, (component, lambda: True))
        time.sleep(0.5)  # a process that cannot start exits at once: let wait_for see it
        from .procs import wait_for

        wait_for(what, check, 90, procs=procs, name=component)
        return time.monotonic() - start


def down(quiet: bool = False, owner: str | None = None) -> bool:
    """Stop everything this harness started and undo its host changes. True if it found any.
    With `owner`, only if the running cluster is still that owner's."""
    with machine_lock():
        if owner is not None:
            state = read_state()
            if state is None or state.get("owner") != owner:
                return False
        return _down(quiet)


def _down(quiet: bool) -> bool:
    layout = _layout()
    state = read_state(layout)
    if state is None and not layout.root.exists():
        return False
    procs = Procs(layout.root)
    names = procs.names()
    ordered = [n for n in STOP_ORDER if n in names] + [n for n in names if n not in STOP_ORDER]
    for name in ordered:
        if name == "containerd":
            hostsys.kill_cgroup_processes()
        procs.stop(name, timeout=5 if name != "etcd" else 10)
    hostsys.kill_cgroup_processes()
    containerd_sock = str(layout.root / "containerd" / "containerd.sock")
    for pid in hostsys.processes_mentioning(containerd_sock):  # shims outlive containerd
        sock = hostsys.shim_socket(pid)
        if sock is None:
            continue  # not a containerd shim (e.g. someone's grep)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        sock.unlink(missing_ok=True)
    hostsys.unmount_all(layout.root)
    hostsys.delete_interfaces()
    hostsys.cleanup_iptables()
    hostsys.remove_cgroups()
    hostsys.remove_container_log_links(layout.root)
    hostsys.remove_host_files()
    if state is not None:
        hostsys.restore_sysctls(dict(state.get("sysctls", {})))
        hostsys.remove_empty_dirs([str(d) for d in state.get("new_dirs", [])])
    if not hostsys.mounts_under(layout.root):
        shutil.rmtree(layout.root, ignore_errors=True)
    elif not quiet:
        print(f"[cluster] warning: mounts remain under {layout.root}")
    return True


def status() -> str:
    layout = _layout()
    state = read_state(layout)
    if state is None:
        return f"no local cluster (state dir: {layout.root})"
    procs = Procs(layout.root)
    tier, ready, owner = state.get("tier"), state.get("ready"), state.get("owner")
    lines = [f"tier: {tier}  ready: {ready}  owner: {owner}"]
    for name in procs.names():
        pid = procs.pid(name)
        lines.append(f"  {name:<24} {'pid ' + str(pid) if pid else 'NOT RUNNING'}")
    lines.append(f"kubeconfig: {layout.admin_kubeconfig}")
    if state.get("tier") == "full":
        lines.append(f"registry: {config.REGISTRY}")
        user = ":".join(config.AUTH_REGISTRY_USER)
        lines.append(f"auth registry: {config.AUTH_REGISTRY} (htpasswd {user})")
    return "\n".join(lines)


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def reap_after(pid: int) -> None:
    """Wait for process `pid` to end; then stop the cluster if that process still owns it."""
    owner = f"pytest:{pid}"
    while _pid_alive(pid):
        state = read_state()
        if state is None or state.get("owner") != owner:
            return
        time.sleep(1)
    down(quiet=True, owner=owner)
