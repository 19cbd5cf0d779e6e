"""Cluster certificates and keys with the `openssl` CLI: one CA, leaf certs, SA key pair."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import config


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Cert:
    name: str
    cn: str
    org: str = ""
    sans: tuple[str, ...] = ()
    server: bool = False


def _ext(cert: Cert) -> str:
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={'serverAuth,clientAuth' if cert.server else 'clientAuth'}",
    ]
    if cert.sans:
        lines.append("subjectAltName=" + ",".join(cert.sans))
    return "\n".join(lines) + "\n"


def _leaf(pki: Path, cert: Cert) -> None:
    subj = f"/CN={cert.cn}" + (f"/O={cert.org}" if cert.org else "")
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{cert.name}.key", cwd=pki
    )
    _openssl(
        "req",
        "-new",
        "-key",
        f"{cert.name}.key",
        "-subj",
        subj,
        "-out",
        f"{cert.name}.csr",
        cwd=pki,
    )
    (pki / f"{cert.name}.ext").write_text(_ext(cert))
    _openssl(
        "x509", "-req", "-in", f"{cert.name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "365", "-sha256", "-extfile", f"{cert.name}.ext",
        "-out", f"{cert.name}.crt",
        cwd=pki,
    )  # fmt: skip


def certs() -> list[Cert]:
    api_sans = (
        f"IP:{config.NODE_IP}",
        "IP:127.0.0.1",
        f"IP:{config.KUBERNETES_SVC_IP}",
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        f"DNS:kubernetes.default.svc.{config.CLUSTER_DOMAIN}",
    )
    return [
        Cert("apiserver", "kube-apiserver", sans=api_sans, server=True),
        Cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Cert("admin", "kubernetes-admin", "system:masters"),
        Cert("controller-manager", "system:kube-controller-manager"),
        Cert("scheduler", "system:kube-scheduler"),
        Cert("kube-proxy", "system:kube-proxy"),
        Cert("kubelet-client", f"system:node:{config.NODE_NAME}", "system:nodes"),
        Cert(
            "kubelet-server",
            f"system:node:{config.NODE_NAME}",
            "system:nodes",
            sans=(f"IP:{config.NODE_IP}", f"DNS:{config.NODE_NAME}", "IP:127.0.0.1"),
            server=True,
        ),
    ]


def generate(pki: Path) -> None:
    """Write ca.{crt,key}, <name>.{crt,key} for every cert, and sa.{key,pub}."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=taskflow-test-cluster-ca",
        "-days", "3650", "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", "ca.crt",
        cwd=pki,
    )  # fmt: skip
    for cert in certs():
        _leaf(pki, cert)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for p in pki.iterdir():
        if p.suffix in (".key",):
            p.chmod(0o600)
