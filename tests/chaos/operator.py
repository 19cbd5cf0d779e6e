"""The operator under test: `python -m taskflow run` as host subprocesses, out of cluster,
with the chart's RBAC (not cluster-admin, and not system:masters, which APF exempts): a
ServiceAccount bound by the chart's ClusterRole and a kubeconfig holding its token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import yaml
from benchmarks.operator_proc import Operator, free_port

from taskflow.engine.kube import Kube
from tests.cluster.fixtures import kubectl
from tests.e2e.chart import helm_binary, helm_template

NAMESPACE = "taskflow-chaos"  # the operator's own: its ServiceAccount and Lease
RELEASE = "chaos"
TOKEN_SECONDS = 3600  # outlives the whole run


def install_rbac(admin_kubeconfig: str) -> str:
    """Apply the chart's ServiceAccount and RBAC (all namespaces); returns the SA's name."""
    docs = helm_template(
        helm=helm_binary(),
        release=RELEASE,
        namespace=NAMESPACE,
        extra=[
            "--show-only",
            "templates/rbac.yaml",
            "--show-only",
            "templates/serviceaccount.yaml",
        ],
    )
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl(admin_kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all([ns, *docs]))
    return str(next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"))


async def token(admin: Kube, sa: str) -> str:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"}
    body["spec"] = {"expirationSeconds": TOKEN_SECONDS}  # type: ignore[assignment]
    path = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{sa}/token"
    answer = msgspec.json.decode(await admin.request("POST", path, body=msgspec.json.encode(body)))
    return str(answer["status"]["token"])


def sa_kubeconfig(admin_kubeconfig: str, bearer: str, server: str, path: Path) -> Path:
    """A kubeconfig for ``server`` (the API server, or the proxy in front of it) with the
    admin kubeconfig's CA and the ServiceAccount's token."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    ctx = admin.get("current-context") or admin["contexts"][0]["name"]
    cluster_name = next(c["context"]["cluster"] for c in admin["contexts"] if c["name"] == ctx)
    cluster: dict[str, Any] = dict(
        next(c["cluster"] for c in admin["clusters"] if c["name"] == cluster_name)
    )
    cluster["server"] = server
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chaos", "cluster": cluster}],
        "users": [{"name": "chaos", "user": {"token": bearer}}],
        "contexts": [{"name": "chaos", "context": {"cluster": "chaos", "user": "chaos"}}],
        "current-context": "chaos",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def server_of(kubeconfig: str) -> str:
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    return str(admin["clusters"][0]["cluster"]["server"])


class Replica(Operator):
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path, name: str) -> None:
        super().__init__(proc, port, log)
        self.name = name


class Operators:
    """The operator processes of one scenario, all with the same arguments; all stopped
    (SIGKILL) by :meth:`stop_all`."""

    def __init__(
        self, kubeconfig: Path, namespace: str, logdir: Path, extra: Sequence[str] = ()
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.logdir = logdir
        self.extra = tuple(extra)
        self.running: list[Replica] = []
        self.started = 0

    def start(self) -> Replica:
        port = free_port()
        self.started += 1
        name = f"op{self.started}"
        argv = [sys.executable, "-m", "taskflow", "run", "--kubeconfig", str(self.kubeconfig)]
        argv += ["--namespace", self.namespace, "--bind-address", f"127.0.0.1:{port}"]
        argv += ["--log-level", "info", *self.extra]
        log = self.logdir / f"{self.namespace}-{name}.log"
        # POD_NAME prefixes the leader-election identity: the Lease says which one leads.
        env = {**os.environ, "POD_NAME": name}
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        op = Replica(proc, port, log, name)
        self.running.append(op)
        return op

    def kill(self, op: Replica) -> None:
        """kill -9: no graceful shutdown, no Lease release."""
        op.proc.send_signal(signal.SIGKILL)
        op.proc.wait(timeout=15)
        self.running.remove(op)

    def stop_all(self) -> None:
        for op in list(self.running):
            self.kill(op)


def healthy(op: Operator) -> bool:
    """The operator's /healthz answers 200 (and the process still runs)."""
    if op.proc.poll() is not None:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def metric_sum(op: Operator, name: str, match: str = "") -> float:
    """Sum of a metric's samples in the operator's /metrics (lines containing ``match``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and match in line
    )


#: LISTs every operator does at start: Tasks and Pods (one namespace)
FIRST_LISTS = 2


def relists(op: Operator) -> float:
    """LISTs after the first ones: each follows a 410 Gone (a watch too far behind)."""
    return metric_sum(op, "taskflow_watch_relists_total") - FIRST_LISTS


def logdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="chaos-logs-"))
