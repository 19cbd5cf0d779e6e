"""Host-level setup and its exact undo: interfaces, sysctls, iptables, cgroups, mounts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from . import config

# Sysctls the kubelet / CNI bridge may change; saved at `up` and restored at `down`.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/ip_local_reserved_ports",  # see reserve_ports()
)
TAG = "taskflow-test-cluster"
# host directories containerd shims / the kubelet create; removed at `down` if we made them
HOST_DIRS = ("/run/containerd", "/var/log/containers", "/var/lib/kubelet", "/var/lib/cni")
_OUR_CHAIN = re.compile(r"^(KUBE-|CNI-)")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def save_sysctls() -> dict[str, str]:
    saved = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            saved[key] = Path("/proc/sys", key).read_text().strip()
    return saved


def restore_sysctls(saved: dict[str, str]) -> None:
    for key, value in saved.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", key).write_text(value + "\n")  # "" alone clears nothing


def reserve_ports(ports: tuple[int, ...]) -> None:
    """Keep the kernel from handing `ports` out as connections' local ports (added to what
    is reserved already; `restore_sysctls` undoes it)."""
    key = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
    with contextlib.suppress(OSError):
        current = [part for part in key.read_text().strip().split(",") if part]
        key.write_text(",".join([*current, *map(str, ports)]))


def add_node_interface() -> None:
    if Path(f"/sys/class/net/{config.NODE_IFACE}").exists():
        return
    for argv in (
        # a port-less bridge: works where the `dummy` driver is not built in
        ("ip", "link", "add", config.NODE_IFACE, "type", "bridge"),
        ("ip", "addr", "add", f"{config.NODE_IP}/32", "dev", config.NODE_IFACE),
        ("ip", "link", "set", config.NODE_IFACE, "up"),
    ):
        subprocess.run(argv, check=True, capture_output=True)


def delete_interfaces() -> None:
    for iface in (config.CNI_BRIDGE, config.NODE_IFACE):
        if Path(f"/sys/class/net/{iface}").exists():
            _run("ip", "link", "del", iface)


def block_pod_egress() -> None:
    """Pods may reach this host only: drop forwarded pod traffic to anything but pods."""
    rule = ["FORWARD", "-s", config.POD_CIDR, "!", "-d", config.POD_CIDR]
    rule += ["-m", "comment", "--comment", TAG, "-j", "DROP"]
    if _run("iptables", "-C", *rule).returncode != 0:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)


def guard_apiserver() -> None:
    guard_port(config.APISERVER_PORT)


def guard_port(number: int) -> None:
    """A server (the API server, the registries) listens on every address; accept only
    loopback (every host-local connection, whatever its address, arrives on `lo`) and pods
    (the CNI bridge)."""
    port = ["INPUT", "-p", "tcp", "--dport", str(number)]
    tag = ["-m", "comment", "--comment", TAG]
    drop = [*port, "!", "-i", "lo", *tag, "-j", "DROP"]
    pods = [*port, "-i", config.CNI_BRIDGE, *tag, "-j", "ACCEPT"]
    for rule in (drop, pods):  # each goes first: ACCEPT from pods ends up before the DROP
        if _run("iptables", "-C", *rule).returncode != 0:
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    # 0.0.0.0 makes a Go server listen on IPv6 too: no pod uses it, so only `lo`
    with contextlib.suppress(FileNotFoundError):
        if _run("ip6tables", "-C", *drop).returncode != 0:
            _run("ip6tables", "-I", *drop)


def _cleanup_iptables(cmd: str) -> None:
    for table in ("filter", "nat", "mangle", "raw"):
        dump = _run(f"{cmd}-save", "-t", table).stdout
        chains = [ln[1:].split()[0] for ln in dump.splitlines() if ln.startswith(":")]
        ours = [c for c in chains if _OUR_CHAIN.match(c)]
        for line in dump.splitlines():
            if not line.startswith("-A "):
                continue
            parts = line.split()
            chain = parts[1]
            target = parts[parts.index("-j") + 1] if "-j" in parts else ""
            if _OUR_CHAIN.match(chain):
                continue  # goes with its chain
            if _OUR_CHAIN.match(target) or TAG in line:
                _run(cmd, "-t", table, "-D", *shlex.split(line[3:]))
        for chain in ours:
            _run(cmd, "-t", table, "-F", chain)
        for chain in ours:
            _run(cmd, "-t", table, "-X", chain)


def cleanup_iptables() -> None:
    """Remove every KUBE-*/CNI-* chain (kube-proxy, kubelet, portmap) and our own rule."""
    for cmd in ("iptables", "ip6tables"):
        with contextlib.suppress(FileNotFoundError):
            _cleanup_iptables(cmd)


def _hierarchies() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]  # cgroup v2
    return [p for p in base.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]


def make_cgroup_root() -> None:
    """The kubelet's --cgroup-root: pods live under /taskflow, never beside other cgroups."""
    for h in _hierarchies():
        d = h / config.CGROUP_ROOT
        d.mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (h / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((h / f).read_text())


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for h in _hierarchies():
        root = h / config.CGROUP_ROOT
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(x) for x in procs.read_text().split())
    return pids


def kill_cgroup_processes() -> None:
    """SIGKILL every container process (all live in the kubelet's cgroup root)."""
    for _ in range(50):
        pids = cgroup_pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_cgroups() -> None:
    for h in _hierarchies():
        root = h / config.CGROUP_ROOT
        if not root.is_dir():
            continue
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (e.g. our containerd socket path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
    return found


def mounts_under(prefix: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(prefix) or point.startswith(str(prefix) + "/"):
            out.append(point)
    return out


def unmount_all(prefix: Path) -> None:
    for _ in range(10):
        points = mounts_under(prefix)
        if not points:
            return
        for point in sorted(set(points), key=len, reverse=True):
            _run("umount", point)
    for point in sorted(set(mounts_under(prefix)), key=len, reverse=True):
        _run("umount", "-l", point)


def remove_container_log_links(state: Path) -> None:
    logs = Path("/var/log/containers")
    if not logs.is_dir():
        return
    for link in logs.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(str(state)):
                link.unlink()


def remove_empty_dirs(paths: list[str]) -> None:
    """rmdir each tree bottom-up, leaving anything that still holds a file."""
    for top in paths:
        if not Path(top).is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def shim_socket(pid: int) -> Path | None:
    """The socket a containerd-shim-runc-v2 serves (containerd 1.6: /run/containerd/s/<sha>)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if not argv[0].endswith("containerd-shim-runc-v2"):
        return None
    opts = dict(zip(argv[1::2], argv[2::2], strict=False))
    if not {"-namespace", "-id", "-address"} <= opts.keys():
        return None
    key = os.path.join(opts["-address"], opts["-namespace"], opts["-id"])
    return Path("/run/containerd/s", hashlib.sha256(key.encode()).hexdigest())


def remove_host_files() -> None:
    """Files the kubelet / libcni write at fixed host paths (not under the state dir)."""
    Path("/var/lib/kubelet/device-plugins/kubelet.sock").unlink(missing_ok=True)
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for f in results.iterdir():
            if f.name.startswith(("taskflow-", "cni-loopback-")):
                f.unlink(missing_ok=True)
