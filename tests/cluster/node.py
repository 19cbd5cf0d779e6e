"""Tier 2: registry, containerd, kubelet, kube-proxy, kube-scheduler and cluster DNS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from . import config, hostsys, images
from .binaries import bin_path
from .kapi import Api
from .layout import Layout
from .procs import Procs, http_answers, http_ok, wait_for
from .registry import start_registry

MIRRORED = ("docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io")


def _containerd_config(layout: Layout) -> Path:
    """containerd with its own root/state/socket; every registry resolves to ours."""
    base = layout.root / "containerd"
    certs = base / "certs.d"
    local = f"http://{config.REGISTRY}"
    auth = f"http://{config.AUTH_REGISTRY}"  # plain http, itself (not a mirror)
    for host, url in (
        *((h, local) for h in (*MIRRORED, config.REGISTRY, "_default")),
        (config.AUTH_REGISTRY, auth),
    ):
        d = certs / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'
        )
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{base / "containerd.sock"}"
[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"
[debug]
  level = "warn"
[metrics]
  address = ""

{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # no CAP_SYS_RESOURCE in some sandboxes: never ask for a lower oom_score_adj than ours
  restrict_oom_score_adj = true
  {cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    {cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      {cri}.containerd.runtimes.runc.options]
        BinaryName = "{bin_path("runc")}"
        Root = "{layout.root / "runc"}"
        SystemdCgroup = false
  {cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.root / "cni" / "net.d"}"
  {cri}.registry]
    config_path = "{certs}"
"""
    path = base / "config.toml"
    path.write_text(text)
    return path


def _cni_config(layout: Layout) -> None:
    netd = layout.root / "cni" / "net.d"
    netd.mkdir(parents=True, exist_ok=True)
    conf = {
        "cniVersion": "0.4.0",
        "name": "taskflow",
        "plugins": [
            {
                "type": "bridge",
                "bridge": config.CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # pods talk to this host only; nothing is NATed outward
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": config.POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (netd / "10-taskflow.conflist").write_text(json.dumps(conf, indent=1))


def _kubelet_config(layout: Layout) -> Path:
    pki = layout.pki
    root = layout.root
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": config.NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(pki / "kubelet-server.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-server.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{config.CGROUP_ROOT}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{root / 'containerd' / 'containerd.sock'}",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "clusterDNS": [config.DNS_IP],
        "clusterDomain": config.CLUSTER_DOMAIN,
        "resolvConf": "",
        "podLogsDir": str(root / "pod-logs"),
        "volumePluginDir": str(root / "kubelet-volume-plugins"),
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
        "oomScoreAdj": 0,
    }
    path = root / "kubelet-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _kube_proxy_config(layout: Layout) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "hostnameOverride": config.NODE_NAME,
        "bindAddress": config.NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "clusterCIDR": config.POD_CIDR,
        "oomScoreAdj": 0,
        "nodePortAddresses": [f"{config.NODE_IP}/32"],
        "conntrack": {"maxPerCore": 0, "min": 0},  # leave the host's conntrack sysctls alone
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "0s", "syncPeriod": "30s"},
    }
    path = layout.root / "kube-proxy-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _coredns_manifest() -> str:
    corefile = f""".:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {config.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
}}
"""
    labels = {"k8s-app": "kube-dns"}
    ns = "kube-system"
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": ns},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "coredns",
                                "image": images.COREDNS_IMAGE,
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                                    {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 1,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": config.DNS_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def _deploy_dns(layout: Layout) -> None:
    subprocess.run(
        [bin_path("kubectl"), "--kubeconfig", str(layout.admin_kubeconfig), "apply", "-f", "-"],
        input=_coredns_manifest(),
        text=True,
        capture_output=True,
        check=True,
    )


def _dns_available(api: Api) -> bool:
    dep = api.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    return bool(dep and dep.get("status", {}).get("availableReplicas", 0) >= 1)


def _any(registry: str) -> str:
    """``127.0.0.1:35000`` -> ``0.0.0.0:35000`` (guarded: loopback and pods only)."""
    return f"0.0.0.0:{registry.rsplit(':', 1)[1]}"


def up(layout: Layout, procs: Procs) -> None:
    """Start tier 2 on a running tier 1; wait for Node Ready and cluster DNS."""
    root = layout.root
    hostsys.make_cgroup_root()
    shutil.copytree(images.ensure_seed(), root / "registry" / "storage", dirs_exist_ok=True)
    for port in config.REGISTRY_PORTS:
        hostsys.guard_port(port)
    start_registry(procs, root / "registry" / "storage", _any(config.REGISTRY), root / "registry")
    start_registry(
        procs,
        root / "auth-registry" / "storage",
        _any(config.AUTH_REGISTRY),
        root / "auth-registry",
        name="auth-registry",
        auth=config.AUTH_REGISTRY_USER,
    )
    _cni_config(layout)
    hostsys.block_pod_egress()
    containerd_conf = _containerd_config(layout)
    procs.start("containerd", [bin_path("containerd"), "--config", str(containerd_conf)])
    kc = str(layout.kubeconfig("scheduler"))
    procs.start(
        "kube-scheduler",
        [
            bin_path("kube-scheduler"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--v=1",
        ],
    )
    wait_for(
        "registry",
        lambda: http_ok(f"http://{config.REGISTRY}/v2/"),
        20,
        procs=procs,
        name="registry",
    )
    wait_for(
        "auth registry",
        lambda: http_answers(f"http://{config.AUTH_REGISTRY}/v2/"),
        20,
        procs=procs,
        name="auth-registry",
    )
    sock = root / "containerd" / "containerd.sock"
    wait_for("containerd socket", sock.exists, 30, procs=procs, name="containerd")
    procs.start(
        "kubelet",
        [
            bin_path("kubelet"),
            f"--config={_kubelet_config(layout)}",
            f"--kubeconfig={layout.kubeconfig('kubelet')}",
            f"--root-dir={root / 'kubelet'}",
            f"--hostname-override={config.NODE_NAME}",
            f"--node-ip={config.NODE_IP}",
            "--v=1",
        ],
    )
    procs.start(
        "kube-proxy",
        [bin_path("kube-proxy"), f"--config={_kube_proxy_config(layout)}", "--v=1"],
    )
    api = Api(layout)
    wait_for(
        f"node {config.NODE_NAME} Ready",
        lambda: api.node_ready(config.NODE_NAME),
        90,
        procs=procs,
        name="kubelet",
    )
    wait_for(
        "kube-proxy rules",
        lambda: http_ok("http://127.0.0.1:10256/healthz"),
        30,
        procs=procs,
        name="kube-proxy",
    )
    _deploy_dns(layout)
    wait_for("cluster DNS (CoreDNS)", lambda: _dns_available(api), 60, procs=procs, name="kubelet")
