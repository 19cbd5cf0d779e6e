"""Paths inside a cluster's state directory, and the kubeconfigs written there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import config


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def kubeconfig(self, user: str) -> Path:
        """Kubeconfig for a component (`admin` is the one handed to users and tests)."""
        if user == "admin":
            return self.admin_kubeconfig
        return self.root / "kubeconfigs" / f"{user}.kubeconfig"

    def write_kubeconfigs(self) -> None:
        pairs = {
            "admin": "admin",
            "controller-manager": "controller-manager",
            "scheduler": "scheduler",
            "kube-proxy": "kube-proxy",
            "kubelet": "kubelet-client",
        }
        for user, cert in pairs.items():
            path = self.kubeconfig(user)
            path.parent.mkdir(parents=True, exist_ok=True)
            doc = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "taskflow",
                        "cluster": {
                            "server": config.APISERVER_URL,
                            "certificate-authority": str(self.pki / "ca.crt"),
                        },
                    }
                ],
                "users": [
                    {
                        "name": user,
                        "user": {
                            "client-certificate": str(self.pki / f"{cert}.crt"),
                            "client-key": str(self.pki / f"{cert}.key"),
                        },
                    }
                ],
                "contexts": [
                    {"name": "taskflow", "context": {"cluster": "taskflow", "user": user}}
                ],
                "current-context": "taskflow",
            }
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            path.chmod(0o600)
