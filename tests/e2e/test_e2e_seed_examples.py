"""The seed's four examples, unchanged, on a real node with the operator installed by Helm.

Builds the Python base (cached) and the operator image, pushes it to the cluster's registry,
`helm install`s the chart into taskflow-system, applies tests/data/seed/*.yaml (only the
customize-image example's placeholder image is filled in) and checks what a user sees.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fixtures import FullCluster, table
from tests.e2e import chart, deploy

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e"
TASK_TIMEOUT = 240.0  # seconds, for all four Tasks (they run side by side; one takes ~100 s)
PLACEHOLDER = "<填入自定义镜像>"
CUSTOM_IMAGE = "busybox:1.28"  # local stand-in, no ENTRYPOINT: the step's args run as given

EXAMPLES = {
    "task_example.yaml": "example-taskflow",
    "task_error_example.yaml": "example-taskflow-error-test",
    "task_script_example.yaml": "example-taskflow-script-test",
    "task_customize_image_example.yaml": "mytask-test-container-agent",
}


@dataclass
class Installed:
    cluster: FullCluster
    image: deploy.OperatorImage
    helm_output: str
    install_seconds: float
    fullname: str


_kubectl = deploy.kubectl_out
_json = deploy.kubectl_json


def _diagnose(cluster: FullCluster) -> str:
    return deploy.diagnostics(cluster, NS, TASKS_NS)


@pytest.fixture(scope="module")
def installed(full_cluster: FullCluster) -> Iterator[Installed]:
    if not full_cluster.registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    image = deploy.build_and_push(full_cluster.registry)
    print(
        f"\noperator image {image.ref}: {image.size_bytes / 1e6:.0f} MB uncompressed, "
        f"{image.pushed_bytes / 1e6:.0f} MB compressed, built in {image.build_seconds:.0f}s"
    )
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    started = time.monotonic()
    # the kubelet executor (init containers): the agent runs the same four examples in
    # test_e2e_agent.py, so both executors run them
    proc = deploy.helm_install(full_cluster, image, extra=("--set", "executor=kubelet"))
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}\n{_diagnose(full_cluster)}")
    print(f"helm install to ready: {seconds:.1f}s")
    yield Installed(full_cluster, image, proc.stdout, seconds, f"{deploy.RELEASE}")
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)


def _apply_examples(cluster: FullCluster, tmp: Path) -> None:
    _kubectl(cluster, "delete", "namespace", TASKS_NS, "--ignore-not-found", "--wait=true")
    _kubectl(cluster, "create", "namespace", TASKS_NS)
    for filename in EXAMPLES:
        source = deploy.SEED_DIR / filename
        text = source.read_text()
        if PLACEHOLDER in text:
            path = tmp / filename
            path.write_text(text.replace(PLACEHOLDER, CUSTOM_IMAGE))
        else:
            path = source  # applied exactly as the seed ships it
        _kubectl(cluster, "apply", "-n", TASKS_NS, "-f", str(path))


@dataclass
class Finished:
    tasks: dict[str, dict[str, Any]]  # name -> Task object when it finished
    pods: dict[str, dict[str, Any]]  # task name -> its pod


@pytest.fixture(scope="module")
def finished(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    cluster = installed.cluster
    _apply_examples(cluster, tmp_path_factory.mktemp("seed"))
    done: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        proc = cluster.kubectl("get", "tasks", "-n", TASKS_NS, "-o", "json", check=False)
        if proc.returncode != 0:  # a transient API error: try again on the next poll
            print(f"kubectl get tasks: {proc.stderr.strip()}")
            return False
        for item in json.loads(proc.stdout)["items"]:
            if (item.get("status") or {}).get("status") in ("Successful", "Failure"):
                done.setdefault(item["metadata"]["name"], item)
        return set(done) >= set(EXAMPLES.values())

    try:
        deploy.wait_for("the seed's Tasks to finish", all_done, timeout=TASK_TIMEOUT)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; finished: {sorted(done)}\n{_diagnose(cluster)}")
    pods = {
        name: _json(cluster, "get", "pod", "-n", TASKS_NS, task["status"]["podName"])
        for name, task in done.items()
    }
    return Finished(done, pods)


def _logs(cluster: FullCluster, pod: str, container: str) -> str:
    return _kubectl(cluster, "logs", "-n", TASKS_NS, pod, "-c", container)


def _container_states(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get(
        "containerStatuses", []
    )
    return {s["name"]: s for s in statuses}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition(task: dict[str, Any]) -> dict[str, Any]:
    conds = [c for c in task["status"].get("conditions", []) if c["type"] == "Succeeded"]
    assert len(conds) == 1, task["status"]
    cond: dict[str, Any] = conds[0]
    return cond


def _step_status(task: dict[str, Any], name: str) -> dict[str, Any]:
    steps: dict[str, dict[str, Any]] = {s["name"]: s for s in task["status"]["steps"]}
    return steps[name]


# ---------------------------------------------------------------------------------------


def test_helm_install_rolls_out_with_notes(installed: Installed) -> None:
    cluster = installed.cluster
    rollout = cluster.kubectl(
        "rollout", "status", f"deployment/{installed.fullname}", "-n", NS, "--timeout=120s"
    )
    assert "successfully rolled out" in rollout.stdout
    assert "kubectl" in installed.helm_output
    assert "get tasks" in installed.helm_output
    assert installed.install_seconds < 300


def test_helm_test_passes(installed: Installed) -> None:
    cluster = installed.cluster
    proc = cluster.helm("test", deploy.RELEASE, "-n", NS, "--logs", "--timeout", "2m", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr + _diagnose(cluster)
    assert re.search(r"Phase:\s+Succeeded", proc.stdout), proc.stdout
    # --logs shows what the test pod printed: the operator's own /readyz answer
    assert "[+]synced" in proc.stdout, proc.stdout
    assert "\nok\n" in proc.stdout, proc.stdout


def test_example_taskflow_succeeds_in_spec_order(installed: Installed, finished: Finished) -> None:
    cluster = installed.cluster
    task = finished.tasks["example-taskflow"]
    assert task["status"]["status"] == "Successful", task["status"]
    assert _condition(task)["status"] == "True"
    pod = finished.pods["example-taskflow"]
    name = pod["metadata"]["name"]
    assert _logs(cluster, name, "step1").strip() == "step1"
    assert _logs(cluster, name, "step2").strip() == "step2"
    # step3 has no `command`: the image's ENTRYPOINT (/script.sh) ran with args ["10"].
    step3 = _logs(cluster, name, "step3")
    assert "10 times" in step3, step3
    assert "10) Hello from the Job" in step3, step3
    states = _container_states(pod)
    order = ["step1", "step2", "step3"]
    for earlier, later in itertools.pairwise(order):
        t_end = _ts(states[earlier]["state"]["terminated"]["finishedAt"])
        t_start = _ts(states[later]["state"]["terminated"]["startedAt"])
        assert t_end <= t_start, (earlier, later, states)
    assert all(states[s]["state"]["terminated"]["exitCode"] == 0 for s in order)


def test_start_and_duration_are_set_and_stay(installed: Installed, finished: Finished) -> None:
    cluster = installed.cluster
    first = _json(cluster, "get", "task", "-n", TASKS_NS, "example-taskflow")["status"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first["startAt"]), first
    assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", first["duration"]), first
    time.sleep(12)
    again = _json(cluster, "get", "task", "-n", TASKS_NS, "example-taskflow")["status"]
    assert again == first


def test_error_example_fails_at_step2(installed: Installed, finished: Finished) -> None:
    cluster = installed.cluster
    task = finished.tasks["example-taskflow-error-test"]
    status = task["status"]
    assert status["status"] == "Failure", status
    cond = _condition(task)
    assert cond["status"] == "False"
    assert "step2" in cond["message"], cond
    assert "exit code 1" in cond["message"], cond
    step2 = _step_status(task, "step2")
    assert step2.get("exitCode") == 1, step2
    step3 = _step_status(task, "step3")
    assert step3["state"] not in ("Running", "Terminated"), step3
    assert not step3.get("startedAt"), step3
    # The pod agrees: step3's container never started.
    states = _container_states(finished.pods["example-taskflow-error-test"])
    assert "running" not in states["step3"]["state"]
    assert "terminated" not in states["step3"]["state"]
    assert not states["step3"].get("started")
    pod = finished.pods["example-taskflow-error-test"]["metadata"]["name"]
    out = _logs(cluster, pod, "step2")
    assert "step2" in out
    assert "error" in out
    events = _json(
        cluster,
        "get",
        "events",
        "-n",
        TASKS_NS,
        "--field-selector",
        "involvedObject.kind=Task,involvedObject.name=example-taskflow-error-test",
    )["items"]
    assert any(
        "step2" in e.get("message", "") and "exit code 1" in e.get("message", "") for e in events
    ), [(e.get("reason"), e.get("message")) for e in events]


def test_script_example_prints_its_script_output(installed: Installed, finished: Finished) -> None:
    task = finished.tasks["example-taskflow-script-test"]
    assert task["status"]["status"] == "Successful", task["status"]
    pod = finished.pods["example-taskflow-script-test"]["metadata"]["name"]
    out = _logs(installed.cluster, pod, "step3").split("\n")
    assert "step4" in out, out
    assert "step4-2" in out, out
    step4 = _logs(installed.cluster, pod, "step4")
    assert "100) Hello from the Job" in step4


def test_customize_image_example_runs_args_without_command(
    installed: Installed, finished: Finished
) -> None:
    task = finished.tasks["mytask-test-container-agent"]
    assert task["status"]["status"] == "Successful", task["status"]
    pod = finished.pods["mytask-test-container-agent"]["metadata"]["name"]
    cluster = installed.cluster
    assert _logs(cluster, pod, "step3").strip() == "step33333"
    assert _logs(cluster, pod, "step4").strip() == "step test2"


def test_kubectl_get_tasks_columns(installed: Installed, finished: Finished) -> None:
    out = _kubectl(installed.cluster, "get", "tasks", "-n", TASKS_NS)
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "STEP", "START", "DURATION", "AGE"], out
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    expected = {
        "example-taskflow": ("Successful", "3/3"),
        "example-taskflow-error-test": ("Failure", "2/3"),
        "example-taskflow-script-test": ("Successful", "4/4"),
        "mytask-test-container-agent": ("Successful", "4/4"),
    }
    assert set(rows) == set(expected), out
    for name, (word, step) in expected.items():
        # NAME STATUS STEP DATE TIME DURATION AGE
        row = rows[name]
        assert len(row) == 7, row
        assert row[1] == word, row
        assert row[2] == step, row
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row[3])
        assert re.fullmatch(r"\d\d:\d\d:\d\d", row[4])
        assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", row[5]), row


def test_kubectl_get_tasks_wide_adds_reason_pod_and_attempt(
    installed: Installed, finished: Finished
) -> None:
    out = _kubectl(installed.cluster, "get", "tasks", "-n", TASKS_NS, "-o", "wide")
    rows = {row["NAME"]: row for row in table(out)}
    assert list(rows["example-taskflow"])[-3:] == ["REASON", "POD", "ATTEMPT"], out
    for name, task in finished.tasks.items():
        want = "StepFailed" if name == "example-taskflow-error-test" else "Succeeded"
        assert rows[name]["REASON"] == want, out
        assert rows[name]["POD"] == task["status"]["podName"] == f"{name}-pod", out
        assert rows[name]["ATTEMPT"] == "1", out


def test_operator_runs_with_only_the_chart_service_account(installed: Installed) -> None:
    cluster = installed.cluster
    pods = _json(cluster, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=taskflow")["items"]
    assert len(pods) == 1
    pod = pods[0]
    spec = pod["spec"]
    sa = spec["serviceAccountName"]
    assert sa == installed.fullname
    container = spec["containers"][0]
    assert container["image"] == installed.image.ref
    assert "KUBECONFIG" not in {e["name"] for e in container.get("env", [])}
    # Only the projected service-account token volume and the /tmp emptyDir.
    kinds = sorted(next(k for k in v if k != "name") for v in spec["volumes"])
    assert kinds == ["emptyDir", "projected"], spec["volumes"]
    projected = next(v for v in spec["volumes"] if "projected" in v)["projected"]["sources"]
    assert {next(iter(s)) for s in projected} <= {"serviceAccountToken", "configMap", "downwardAPI"}
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    # That account can do what the operator needs and no more.
    who = f"system:serviceaccount:{NS}:{sa}"
    for verb, resource, allowed in [
        ("create", "pods", True),
        ("patch", "tasks.api.practice.com/status", True),
        ("delete", "pods", False),
        # image pull secrets for ENTRYPOINT/CMD lookups: get, never list or watch
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("create", "secrets", False),
        ("get", "serviceaccounts", True),
        ("create", "clusterrolebindings", False),
    ]:
        res, _, sub = resource.partition("/")
        args = ["auth", "can-i", verb, res, f"--as={who}", "-n", TASKS_NS]
        if sub:
            args.append(f"--subresource={sub}")
        answer = cluster.kubectl(*args, check=False).stdout.strip()
        assert (answer == "yes") is allowed, (verb, resource, answer)


def _metrics(cluster: FullCluster, service: str) -> str:
    raw = cluster.kubectl(
        "get",
        "--raw",
        f"/api/v1/namespaces/{NS}/services/{service}:metrics/proxy/metrics",
        check=False,
    )
    if raw.returncode == 0:
        return raw.stdout
    # Fall back to a port-forward through the kubelet.
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from tests.cluster.fixtures import tool

    forward = subprocess.Popen(
        [tool("kubectl"), "port-forward", "-n", NS, f"service/{service}", f"{port}:metrics"],
        env={**os.environ, "KUBECONFIG": cluster.kubeconfig, **cluster.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body: bytes = r.read()
                    return body.decode()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_metrics_show_reconciles(installed: Installed, finished: Finished) -> None:
    text = _metrics(installed.cluster, f"{installed.fullname}-metrics")
    samples = [
        line for line in text.splitlines() if line.startswith("controller_runtime_reconcile_total{")
    ]
    total = sum(float(line.rsplit(" ", 1)[1]) for line in samples)
    assert total >= len(EXAMPLES), samples
    assert 'result="success"' in "".join(samples), samples


def test_crd_reapply_and_helm_upgrade_as_the_readme_says(
    installed: Installed, finished: Finished
) -> None:
    cluster = installed.cluster
    _kubectl(
        cluster, "apply", "--server-side", "--force-conflicts", "-f", str(chart.CRD_PATH.parent)
    )
    upgraded = cluster.helm(
        "upgrade",
        deploy.RELEASE,
        str(chart.CHART_DIR),
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "extraArgs[0]=--resync-period=300",
        "--wait",
        "--timeout",
        "3m",
        check=False,
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr + _diagnose(cluster)
    pods = _json(cluster, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=taskflow")
    [pod] = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert "--resync-period=300" in pod["spec"]["containers"][0]["args"]
    # the new operator re-lists everything and leaves finished Tasks exactly as they were
    time.sleep(3)
    for name, before in finished.tasks.items():
        after = _json(cluster, "get", "task", name, "-n", TASKS_NS)
        assert after["status"] == before["status"], name


def test_helm_uninstall_keeps_the_crd(installed: Installed, finished: Finished) -> None:
    cluster = installed.cluster
    cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait")
    gone = cluster.kubectl(
        "get",
        "deployment,serviceaccount,service",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/instance=taskflow",
        "-o",
        "name",
    )
    assert gone.stdout.strip() == ""
    assert cluster.kubectl("get", "clusterrole", installed.fullname, check=False).returncode != 0
    assert _kubectl(cluster, "get", "crd", "tasks.api.practice.com")
    # The Tasks (user data) stay with the CRD.
    names = _kubectl(cluster, "get", "tasks", "-n", TASKS_NS, "-o", "name").split()
    assert len(names) == len(EXAMPLES)
