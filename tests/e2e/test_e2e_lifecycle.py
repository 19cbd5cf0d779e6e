"""Cancel, timeout, retries and TTL on a real node (kubelet, containerd), operator by Helm.

Every Task starts at once and the checks then wait for each; the whole module takes about
as long as its slowest Task (a cancel with a 3 s grace period, a retry).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.fixtures import FullCluster
from tests.e2e import chart, deploy

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e-lifecycle"
WAIT = 120.0  # seconds, per Task

#: A step that says it started and then runs until told to stop (exit 143 on SIGTERM: the
#: shell is PID 1, which ignores signals it has no trap for).
LONG = 'echo started; trap "echo stopping; exit 143" TERM; while true; do sleep 1; done'


def _step(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.28", "command": ["sh", "-c", script]}


def _task(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": TASKS_NS},
        "spec": {"steps": list(steps), **spec},
    }


@dataclass
class Env:
    cluster: FullCluster
    marker_dir: Path

    def task(self, name: str) -> dict[str, Any]:
        return deploy.kubectl_json(self.cluster, "get", "task", name, "-n", TASKS_NS)

    def status(self, name: str) -> dict[str, Any]:
        return self.task(name).get("status") or {}

    def reason(self, name: str) -> str:
        st = self.status(name)
        cond = next(c for c in st.get("conditions", []) if c["type"] == "Succeeded")
        return f"{st.get('status')}/{cond.get('reason')}: {cond.get('message')}"

    def pods(self, name: str) -> list[dict[str, Any]]:
        out = deploy.kubectl_json(
            self.cluster,
            "get",
            "pods",
            "-n",
            TASKS_NS,
            "-l",
            f"api.practice.com/task={name}",
        )
        items: list[dict[str, Any]] = out["items"]
        return sorted(items, key=lambda p: str(p["metadata"]["name"]))

    def wait_status(self, name: str, *words: str) -> dict[str, Any]:
        def done() -> bool:
            return self.status(name).get("status") in words

        try:
            deploy.wait_for(
                f"Task {name} to be {'/'.join(words)}", done, timeout=WAIT, interval=0.5
            )
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{deploy.diagnostics(self.cluster, NS, TASKS_NS)}")
        return self.status(name)

    def logs(self, pod: str, container: str) -> str:
        return deploy.kubectl_out(self.cluster, "logs", "-n", TASKS_NS, pod, "-c", container)


@pytest.fixture(scope="module")
def env(full_cluster: FullCluster) -> Iterator[Env]:
    if not full_cluster.registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    image = deploy.build_and_push(full_cluster.registry)
    # the README's upgrade step: Helm never upgrades crds/, a cluster may hold an older CRD
    full_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(chart.CRD_PATH))
    # the kubelet executor: the cancel test checks that a later step's container never
    # started, which only init containers promise (agent containers all start, and wait)
    proc = deploy.helm_install(full_cluster, image, extra=("--set", "executor=kubelet"))
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}")
    full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", "--wait=true")
    full_cluster.kubectl("create", "namespace", TASKS_NS)
    marker_dir = Path(f"/tmp/taskflow-e2e-{uuid.uuid4().hex[:8]}")  # the node is this host
    marker = {
        "name": "marker",
        "hostPath": {"path": str(marker_dir), "type": "DirectoryOrCreate"},
    }
    flaky = {
        **_step("flaky", "if [ -f /m/tried ]; then echo second; else touch /m/tried; exit 1; fi"),
        "volumeMounts": [{"name": "marker", "mountPath": "/m"}],
    }
    tasks = [
        _task(
            "cancel-running",
            _step("a", LONG),
            _step("b", "echo b ran"),
            retries=2,  # a cancelled Task is never retried
            podTemplate={"terminationGracePeriodSeconds": 3},
        ),
        _task("cancel-pending", _step("a", "echo never"), cancel=True),
        _task(
            "timeout-running",
            _step("a", LONG),
            timeout="8s",
            podTemplate={"terminationGracePeriodSeconds": 3},
        ),
        _task(
            "timeout-unschedulable",
            _step("a", "echo never"),
            timeout="3s",
            podTemplate={"nodeSelector": {"taskflow.test/no-such-node": "true"}},
        ),
        _task("retry-once", flaky, retries=1, podTemplate={"volumes": [marker]}),
        _task("retry-always", _step("a", "echo try; exit 3"), retries=2),
        _task("ttl", _step("a", "echo done"), ttlSecondsAfterFinished=3),
    ]
    full_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(tasks))
    try:
        yield Env(full_cluster, marker_dir)
    finally:
        full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)
        full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
        shutil.rmtree(marker_dir, ignore_errors=True)


def test_cancel_while_running_stops_the_step_keeps_the_logs_and_runs_nothing_more(
    env: Env,
) -> None:
    env.wait_status("cancel-running", "Running")
    pod = env.status("cancel-running")["podName"]
    deploy.wait_for(
        "step a to print", lambda: "started" in env.logs(pod, "a"), timeout=WAIT, interval=0.5
    )
    started = time.monotonic()
    env.cluster.kubectl(
        "patch", "task", "cancel-running", "-n", TASKS_NS, "--type", "merge", "-p",
        json.dumps({"spec": {"cancel": True}}),
    )  # fmt: skip
    st = env.wait_status("cancel-running", "Cancelled", "Failure", "Successful")
    took = time.monotonic() - started
    assert st["status"] == "Cancelled", env.reason("cancel-running")
    print(f"cancel -> Cancelled in {took:.1f}s (grace period 3 s)")
    assert [(s["name"], s["state"]) for s in st["steps"]] == [("a", "Terminated"), ("b", "NotRun")]
    # the pod and its logs stay; the SIGTERM reached the step; b never started
    assert "stopping" in env.logs(pod, "a")
    [p] = env.pods("cancel-running")  # no retry after a cancel
    b = next(c for c in p["status"]["containerStatuses"] if c["name"] == "b")
    assert "running" not in b["state"]
    assert not (b["state"].get("terminated") or {}).get("startedAt")
    # an un-cancel is refused by the API server with the reason
    undo = env.cluster.kubectl(
        "patch", "task", "cancel-running", "-n", TASKS_NS, "--type", "merge", "-p",
        json.dumps({"spec": {"cancel": False}}), check=False,
    )  # fmt: skip
    assert undo.returncode != 0
    assert "a cancel cannot be undone" in undo.stderr


def test_a_task_cancelled_while_pending_never_gets_a_pod(env: Env) -> None:
    st = env.wait_status("cancel-pending", "Cancelled", "Failure", "Successful")
    assert st["status"] == "Cancelled"
    assert env.pods("cancel-pending") == []
    assert "podName" not in st


def test_timeout_while_running_names_the_step(env: Env) -> None:
    st = env.wait_status("timeout-running", "Failure", "Successful", "Cancelled")
    reason = env.reason("timeout-running")
    assert reason.startswith("Failure/TimedOut: "), reason
    assert "within 8s (spec.timeout)" in reason
    assert "step a (1/1) was running" in reason
    assert st["steps"][0]["state"] == "Terminated"
    assert "stopping" in env.logs(st["podName"], "a")


def test_timeout_while_unschedulable_says_what_it_waited_for(env: Env) -> None:
    env.wait_status("timeout-unschedulable", "Failure", "Successful", "Cancelled")
    reason = env.reason("timeout-unschedulable")
    assert reason.startswith("Failure/TimedOut: "), reason
    assert "cannot be scheduled" in reason
    [p] = env.pods("timeout-unschedulable")
    assert p["spec"]["activeDeadlineSeconds"] == 1  # it could never run if scheduled later


def test_a_task_that_fails_once_succeeds_on_its_second_attempt(env: Env) -> None:
    st = env.wait_status("retry-once", "Successful", "Failure", "Cancelled")
    assert st["status"] == "Successful", env.reason("retry-once")
    assert st["attempt"] == 2
    [first] = st["attempts"]
    assert (first["attempt"], first["reason"], first["podName"]) == (
        1,
        "StepFailed",
        "retry-once-pod",
    )
    pods = env.pods("retry-once")
    assert [p["metadata"]["name"] for p in pods] == ["retry-once-pod", "retry-once-pod-2"]
    assert env.logs("retry-once-pod-2", "flaky").strip() == "second"
    wide = deploy.kubectl_out(
        env.cluster, "get", "task", "retry-once", "-n", TASKS_NS, "-o", "wide"
    )
    assert wide.split("\n")[0].split()[-1] == "ATTEMPT"
    assert wide.split("\n")[1].split()[-1] == "2"


def test_an_always_failing_task_with_two_retries_runs_three_pods(env: Env) -> None:
    st = env.wait_status("retry-always", "Failure", "Successful", "Cancelled")
    assert st["attempt"] == 3
    assert env.reason("retry-always").startswith("Failure/StepFailed: ")
    assert [a["attempt"] for a in st["attempts"]] == [1, 2]
    assert len(env.pods("retry-always")) == 3
    events = deploy.kubectl_json(
        env.cluster,
        "get",
        "events",
        "-n",
        TASKS_NS,
        "--field-selector",
        "involvedObject.name=retry-always,reason=Retrying",
    )["items"]
    assert len(events) == 2


def test_a_finished_task_goes_after_its_ttl(env: Env) -> None:
    def gone() -> bool:
        proc = env.cluster.kubectl("get", "task", "ttl", "-n", TASKS_NS, check=False)
        return proc.returncode != 0 and "NotFound" in proc.stderr

    deploy.wait_for("the Task to be deleted after its TTL", gone, timeout=WAIT, interval=0.5)
    # its pod follows through the owner reference (the garbage collector)
    deploy.wait_for("its pod to go", lambda: env.pods("ttl") == [], timeout=WAIT, interval=1)
