"""Versions, addresses and paths of the local test cluster (one place to change them)."""

from __future__ import annotations

import os
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.19.5"
COREDNS_VERSION = "v1.12.4"

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SRC = Path(__file__).resolve().parent

NODE_NAME = "taskflow-node"
# A port-less bridge interface carries the node address: nothing is bound to a real NIC.
NODE_IFACE = "tfnode0"
NODE_IP = "10.213.0.1"
CNI_BRIDGE = "tfcni0"
POD_CIDR = "10.214.0.0/24"
SERVICE_CIDR = "10.215.0.0/24"
KUBERNETES_SVC_IP = "10.215.0.1"
DNS_IP = "10.215.0.10"
CLUSTER_DOMAIN = "cluster.local"
CGROUP_ROOT = "taskflow"

ETCD_PORT = 12379
ETCD_PEER_PORT = 12380
APISERVER_PORT = 6443
#: what every host-side client (kubectl, tests, components, an out-of-cluster operator) uses:
#: loopback only; pods use the `kubernetes` Service (the node address)
APISERVER_URL = f"https://127.0.0.1:{APISERVER_PORT}"
REGISTRY = "127.0.0.1:35000"
#: a second registry, with htpasswd auth (tests of pull secrets and image lookups)
AUTH_REGISTRY = "127.0.0.1:35002"
AUTH_REGISTRY_USER = ("taskflow-test", "registry-pass")
#: both registries listen on every address so that pods (the in-cluster operator) reach
#: them at the node address; hostsys.guard_port() admits only `lo` and the pod bridge
REGISTRY_PORTS = (35000, 35002)
#: the seed registry, which builds the test images once (never at the same time as a cluster)
SEED_REGISTRY = "127.0.0.1:35001"
#: fixed ports inside the kernel's ephemeral range (32768-60999): while a cluster is up they
#: are in `ip_local_reserved_ports`, so no connection gets one as its local port and makes
#: the registry's bind fail with "address already in use"
RESERVED_PORTS = (35000, 35001, 35002)


def node_url(registry: str) -> str:
    """``127.0.0.1:35000`` -> ``http://10.213.0.1:35000``: the registry as pods reach it."""
    return f"http://{NODE_IP}:{registry.rsplit(':', 1)[1]}"


TIERS = ("control-plane", "full")


def state_dir() -> Path:
    """Where a running cluster keeps everything (`.cluster/` unless TASKFLOW_CLUSTER_DIR)."""
    env = os.environ.get("TASKFLOW_CLUSTER_DIR")
    return Path(env).resolve() if env else REPO / ".cluster"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskflow-cluster"


def cache_dir() -> Path:
    """Per-Kubernetes-version cache: binaries and the seeded image registry."""
    return cache_root() / K8S_VERSION
