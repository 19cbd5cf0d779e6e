"""Tier 1: etcd, kube-apiserver and kube-controller-manager."""

from __future__ import annotations

from . import config, hostsys
from .binaries import bin_path
from .kapi import Api
from .layout import Layout
from .procs import Procs, http_ok, wait_for


def start_etcd(layout: Layout, procs: Procs) -> None:
    data = layout.root / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    client = f"http://127.0.0.1:{config.ETCD_PORT}"
    peer = f"http://127.0.0.1:{config.ETCD_PEER_PORT}"
    procs.start(
        "etcd",
        [
            bin_path("etcd"),
            "--name=taskflow",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=taskflow={peer}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",  # test data only: much faster on slow disks
            "--log-level=warn",
        ],
    )


def start_apiserver(layout: Layout, procs: Procs) -> None:
    pki = layout.pki
    procs.start(
        "kube-apiserver",
        [
            bin_path("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{config.ETCD_PORT}",
            # 0.0.0.0: host-side clients use 127.0.0.1, pods reach the advertised node
            # address through the `kubernetes` Service; hostsys.guard_apiserver() drops
            # anything else
            "--bind-address=0.0.0.0",
            f"--advertise-address={config.NODE_IP}",
            f"--secure-port={config.APISERVER_PORT}",
            f"--service-cluster-ip-range={config.SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer=https://kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={pki}",
            "--v=1",
        ],
    )


def start_controller_manager(layout: Layout, procs: Procs) -> None:
    pki = layout.pki
    kc = str(layout.kubeconfig("controller-manager"))
    procs.start(
        "kube-controller-manager",
        [
            bin_path("kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            "--leader-elect=false",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={config.SERVICE_CIDR}",
            "--concurrent-gc-syncs=5",
            f"--flex-volume-plugin-dir={layout.root / 'flexvolume'}",
            "--v=1",
        ],
    )


def up(layout: Layout, procs: Procs) -> None:
    """Start tier 1 and wait until it serves and the default ServiceAccount exists."""
    hostsys.guard_apiserver()
    start_etcd(layout, procs)
    wait_for(
        "etcd",
        lambda: http_ok(f"http://127.0.0.1:{config.ETCD_PORT}/health"),
        30,
        procs=procs,
        name="etcd",
    )
    start_apiserver(layout, procs)
    api = Api(layout)
    wait_for("kube-apiserver /readyz", api.healthy, 60, procs=procs, name="kube-apiserver")
    start_controller_manager(layout, procs)
    wait_for(
        "the default ServiceAccount (controller-manager)",
        lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
        60,
        procs=procs,
        name="kube-controller-manager",
    )
