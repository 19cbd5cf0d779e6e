"""A step is untrusted code: on the real node, under the default executor (the agent), it
cannot do what it could not do under the kubelet (docs/agent.md, "Threat model").

* a failing step whose background loop forges a success in the termination log and its
  results: the Task ends ``Failure`` with the real exit code, the next step never runs;
* a step writing its own state early (its run directory is writable) and failing later:
  the next step does not start before it ends, and never runs;
* a planted ``results`` link to where the next step mounts a Secret: no secret in any log
  or status;
* a step mounting taskflow's own volumes: refused at ``kubectl apply``;
* the agent killed with SIGKILL from the host, and a later step whose image never pulls:
  ``Failure`` within seconds and the pod stopped;
* 14 steps writing 900-byte results: every step that ran is reported as run;
* a step ignoring SIGTERM past its timeout with a 1 s grace period: killed after ~1 s;
* a hostile result passed through an env value into a script: printed verbatim.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import config as cluster_config
from tests.cluster.fixtures import FullCluster
from tests.e2e import chart, deploy

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e-trust"
BUSYBOX = "busybox:1.28"
SECRET_VALUE = "TOPSECRET-4b1d"
HOSTILE = 'x"; echo INJECTED uid=$(id -u); : "'
FINAL = ("Successful", "Failure", "Cancelled")
#: how long a Task that must end "within seconds" may take from its outcome to the pod stopped
STOP_WITHIN = 45.0

#: a state that says "success": what a forger writes where the agent's truth goes
FORGED = json.dumps(
    {
        "v": 1,
        "name": "forger",
        "exitCode": 0,
        "startedAt": "2026-01-01T00:00:00.000Z",
        "finishedAt": "2026-01-01T00:00:01.000Z",
        "skipped": False,
        "timedOut": False,
        "abort": False,
        "error": None,
        "results": [{"name": "r", "value": "forged"}],
    },
    separators=(",", ":"),
)


def _sh(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "command": ["sh", "-c", script], **fields}


def _task(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": TASKS_NS},
        "spec": {"steps": list(steps), **spec},
    }


def _tasks() -> list[dict[str, Any]]:
    forge_loop = (
        f"(while :; do printf '%s' '{FORGED}' > /dev/termination-log; "
        "printf forged > $(results.r.path); done) & sleep 0.5; exit 3"
    )
    early = json.dumps({**json.loads(FORGED), "name": "early", "results": []})
    write_early = f"printf '%s' '{early}' > /taskflow/run/early/state.json; sleep 6; exit 3"
    results = "/taskflow/run/planter/results"
    plant = f"rm -rf {results} && ln -s /mnt/secret {results}"
    secret_volume = {"name": "secret", "secret": {"secretName": "trust-secret"}}
    return [
        _task(
            "forged-success",
            _sh("forger", forge_loop, results=[{"name": "r"}]),
            _sh("after", "echo the next step ran"),
        ),
        _task("early-state", _sh("early", write_early), _sh("after", "echo the next step ran")),
        _task(
            "planted-link",
            # onError continue: the reader runs although the planter's own results are unreadable
            _sh("planter", plant, results=[{"name": "token"}], onError="continue"),
            {
                **_sh("reader", "echo got: $(steps.planter.results.token)"),
                "volumeMounts": [{"name": "secret", "mountPath": "/mnt/secret"}],
            },
            podTemplate={"volumes": [secret_volume]},
        ),
        _task("victim", _sh("victim", "echo waiting; sleep 300"), _sh("after", "echo ran")),
        _task(
            "never-pulls",
            _sh("first", "echo first"),
            {"name": "second", "image": "taskflow-test/never-pulls:1", "command": ["true"]},
        ),
        _task(
            "big-results",
            *(
                _sh(
                    f"s{i:02}",
                    "head -c 900 /dev/zero | tr '\\0' x > $(results.r.path)",
                    results=[{"name": "r"}],
                )
                for i in range(14)
            ),
        ),
        _task(
            "ignores-term",
            _sh("stubborn", "trap '' TERM; echo started; sleep 30", timeout="2s"),
            podTemplate={"terminationGracePeriodSeconds": 1},
        ),
        _task(
            "hostile-result",
            _sh(
                "make",
                f"printf '%s' '{HOSTILE}' > $(results.token.path)",
                results=[{"name": "token"}],
            ),
            {
                "name": "use",
                "image": BUSYBOX,
                "script": "printf '%s\\n' \"$TOKEN\"",
                "env": [{"name": "TOKEN", "value": "$(steps.make.results.token)"}],
            },
        ),
    ]


@dataclass
class Installed:
    cluster: FullCluster


@pytest.fixture(scope="module")
def installed(
    full_cluster: FullCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    registry = full_cluster.registry
    if not registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    operator = deploy.build_and_push(registry)
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    crds = str(chart.CHART_DIR / "crds")
    deploy.kubectl_out(full_cluster, "apply", "--server-side", "--force-conflicts", "-f", crds)
    proc = deploy.helm_install(full_cluster, operator)  # the chart's defaults: the agent
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}")
    deploy.kubectl_out(full_cluster, "delete", "namespace", TASKS_NS, "--ignore-not-found")
    deploy.kubectl_out(full_cluster, "create", "namespace", TASKS_NS)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "trust-secret", "namespace": TASKS_NS},
        "stringData": {"token": SECRET_VALUE},
    }
    path: Path = tmp_path_factory.mktemp("trust") / "tasks.yaml"
    path.write_text(yaml.safe_dump_all([secret, *_tasks()]))
    deploy.kubectl_out(full_cluster, "apply", "-f", str(path))
    yield Installed(full_cluster)
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)


def _get(i: Installed, name: str) -> dict[str, Any]:
    return deploy.kubectl_json(i.cluster, "get", "task", "-n", TASKS_NS, name)


def _final(i: Installed, name: str, timeout: float = 180) -> dict[str, Any]:
    """The Task's status once it is final."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(_get(i, name).get("status") or {})
        return seen.get("status") in FINAL

    try:
        deploy.wait_for(f"Task {name} to finish", done, timeout=timeout, interval=0.5)
    except TimeoutError as exc:
        pytest.fail(f"{exc}: {seen}\n{deploy.diagnostics(i.cluster, NS, TASKS_NS)}")
    return seen


def _cond(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Succeeded")


def _steps(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status["steps"]}


def _pod(i: Installed, status: dict[str, Any]) -> dict[str, Any]:
    return deploy.kubectl_json(i.cluster, "get", "pod", "-n", TASKS_NS, status["podName"])


def _logs(i: Installed, status: dict[str, Any], step: str) -> str:
    proc = i.cluster.kubectl("logs", "-n", TASKS_NS, status["podName"], "-c", step, check=False)
    return proc.stdout


def _pod_stopped(i: Installed, status: dict[str, Any]) -> float:
    """Seconds until the Task's pod is terminal (Failed/Succeeded); fails past STOP_WITHIN."""

    def stopped() -> bool:
        return _pod(i, status)["status"].get("phase") in ("Succeeded", "Failed")

    try:
        return deploy.wait_for("the pod to stop", stopped, timeout=STOP_WITHIN, interval=0.5)
    except TimeoutError as exc:
        pytest.fail(f"{exc}: {_pod(i, status)['status']}")


def _ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_forged_success_ends_in_failure_with_the_real_exit_code(installed: Installed) -> None:
    status = _final(installed, "forged-success")
    assert status["status"] == "Failure", status
    steps = _steps(status)
    assert steps["forger"]["exitCode"] == 3, steps
    assert steps["forger"]["state"] != "Succeeded", steps
    assert steps["after"]["state"] == "NotRun", steps
    assert _logs(installed, status, "after") == ""
    _pod_stopped(installed, status)


def test_a_step_writing_its_own_state_early_does_not_start_the_next(installed: Installed) -> None:
    status = _final(installed, "early-state")
    assert status["status"] == "Failure", status
    steps = _steps(status)
    assert steps["early"]["exitCode"] == 3, steps
    assert steps["after"]["state"] == "NotRun", steps
    assert _logs(installed, status, "after") == ""
    _pod_stopped(installed, status)


def test_a_planted_results_link_leaks_no_secret(installed: Installed) -> None:
    status = _final(installed, "planted-link")
    assert status["status"] == "Failure", status
    reader = _steps(status)["reader"]
    assert reader["state"] != "Succeeded", reader
    assert "symbolic link" in json.dumps(status), status
    pod = _pod(installed, status)
    everything = json.dumps(status) + json.dumps(pod["status"])
    everything += "".join(_logs(installed, status, s) for s in ("planter", "reader"))
    events = installed.cluster.kubectl("get", "events", "-n", TASKS_NS, "-o", "json").stdout
    assert SECRET_VALUE not in everything + events


@pytest.mark.parametrize("volume", ["taskflow-bin", "taskflow-run-1", "taskflow-scripts"])
def test_a_step_may_not_mount_taskflows_volumes(installed: Installed, volume: str) -> None:
    task = _task(
        f"mounts-{volume}",
        _sh("a", "true"),
        {**_sh("b", "true"), "volumeMounts": [{"name": volume, "mountPath": "/x"}]},
    )
    proc = installed.cluster.kubectl("apply", "-f", "-", input=json.dumps(task), check=False)
    assert proc.returncode != 0, proc.stdout
    assert volume in proc.stderr, proc.stderr
    assert "steps[1]" in proc.stderr or "step b" in proc.stderr, proc.stderr


def _agent_pids(step: str) -> list[int]:
    """Host PIDs of the agents running ``step`` (their cmdline: taskflow-agent step --name)."""
    wanted = f"step\0--name\0{step}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"taskflow-agent\0" in cmdline and wanted in cmdline:
            pids.append(int(entry.name))
    return pids


def test_an_agent_killed_from_the_host_fails_the_task_and_stops_the_pod(
    installed: Installed,
) -> None:
    if installed.cluster.registry != cluster_config.REGISTRY or os.geteuid() != 0:
        pytest.skip("needs the harness's node on this host, as root")
    pids: list[int] = []

    def running() -> bool:
        status = _get(installed, "victim").get("status") or {}
        pids[:] = _agent_pids("victim") if status.get("podName") else []
        return bool(pids) and "waiting" in _logs(installed, status, "victim")

    deploy.wait_for("the victim step to run", running, timeout=180, interval=0.5)
    killed = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    status = _final(installed, "victim", timeout=60)
    took = time.monotonic() - killed
    assert status["status"] == "Failure", status
    assert took < 30, f"{took:.1f} s from the kill to a final status"
    assert "137" in _cond(status)["message"] or "Error" in _cond(status)["message"], status
    assert _steps(status)["after"]["state"] == "NotRun"
    _pod_stopped(installed, status)


def test_a_step_whose_image_never_pulls_fails_and_stops_the_pod(installed: Installed) -> None:
    # the registry answers NotFound: final at once, not after --image-pull-timeout (5 min)
    status = _final(installed, "never-pulls", timeout=120)
    assert status["status"] == "Failure", status
    assert _cond(status)["reason"] == "ImagePullFailed", _cond(status)
    assert "the registry has no image" in _cond(status)["message"], _cond(status)
    assert _logs(installed, status, "first").strip() == "first"
    _pod_stopped(installed, status)


def test_fourteen_steps_with_900_byte_results_every_step_that_ran_is_reported(
    installed: Installed,
) -> None:
    status = _final(installed, "big-results")
    pod = _pod(installed, status)
    started = {
        c["name"]
        for c in pod["status"].get("containerStatuses", [])
        if (c.get("state", {}).get("terminated") or {}).get("startedAt")
        or c.get("state", {}).get("running")
    }
    for step in _steps(status).values():
        if step.get("startedAt"):
            assert step["state"] != "NotRun", step
        if step["state"] == "NotRun":
            # a NotRun step's agent never ran its command (it may have started and skipped)
            assert not step.get("exitCode"), step
    # 14 steps + the install container: 12288 // 15 = 819 bytes each, so 900 bytes cannot fit
    assert status["status"] == "Failure", status
    first = _steps(status)["s00"]
    assert first["state"] != "NotRun", first
    assert "s00" in started, pod["status"]
    assert "bytes" in json.dumps(first) or "bytes" in _cond(status)["message"], status


def test_a_step_ignoring_sigterm_is_killed_after_the_pods_grace_period(
    installed: Installed,
) -> None:
    status = _final(installed, "ignores-term")
    assert _cond(status)["reason"] == "StepTimeout", _cond(status)
    step = _steps(status)["stubborn"]
    took = (_ms(step["finishedAt"]) - _ms(step["startedAt"])).total_seconds()
    assert 1.9 <= took < 5.5, f"{took:.1f} s with timeout 2s and a 1 s grace period"


def test_a_hostile_result_through_an_env_value_is_passed_verbatim(installed: Installed) -> None:
    status = _final(installed, "hostile-result")
    assert status["status"] == "Successful", status
    out = _logs(installed, status, "use")
    assert out == HOSTILE + "\n", out
    assert "INJECTED uid=0" not in out  # what the injection would print had it run
