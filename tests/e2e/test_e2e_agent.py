"""The agent executor on a real node (docs/agent.md): operator + agent images built by the
harness, the chart installed with ``executor=agent`` and ``agent.image``, then Tasks that
exercise what only the agent can do, side by side.

* the seed's four examples under the agent: applied unchanged (the operator reads the
  ENTRYPOINT/CMD of steps without ``command`` from the registry) they end exactly as with
  that ``command`` written out by hand (the image's ENTRYPOINT, or the args for busybox);
* ENTRYPOINT/CMD lookup from the harness's htpasswd registry: a two-platform index whose
  amd64 and arm64 commands differ (the agent picks its machine's), with the pull secret of
  the Task, of its service account, and without one (``ImageLookupFailed``, the 401);
* per-step timeout, onError continue, results between steps (argv, env, script);
* a busybox (musl) image, the harness's Debian Python (glibc) image and an image holding one
  static binary only; read-only root filesystem and a non-root user;
* requests: three steps of 1 CPU each on a 2-CPU node schedule (max, not sum);
* native sidecars under both executors (one serving HTTP to a step, one crashing and
  restarted, one whose image does not exist) and a flaky step retried in place.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
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
from tests.e2e import chart, deploy, images
from tests.oci_registry import Pusher

pytestmark = pytest.mark.e2e

NS = deploy.NAMESPACE
TASKS_NS = "taskflow-e2e-agent"
TASK_TIMEOUT = 240.0
BUSYBOX = "busybox:1.28"
PLACEHOLDER = "<填入自定义镜像>"
#: the ENTRYPOINT of the seed's devopscube/kubernetes-job-demo image
JOB_DEMO_ENTRYPOINT = ["/script.sh"]


#: the auth registry's two-platform image: amd64 and arm64 run different commands
PRIVATE_REPO = "private/echo"
AMD64_ENTRYPOINT = ["/bin/echo", "amd64-entrypoint"]


@dataclass
class Refs:
    agent: str
    glibc: str
    static: str
    private: str  # on the auth registry; "" without the harness


def _push_private() -> str:
    """An OCI index on the auth registry: linux/amd64 = busybox with ENTRYPOINT
    ``echo amd64-entrypoint`` and CMD ``from-cmd``; linux/arm64 (never pulled here) with
    other ones."""
    push = Pusher(f"http://{cluster_config.AUTH_REGISTRY}", cluster_config.AUTH_REGISTRY_USER)
    amd = push.derived(
        f"http://{cluster_config.REGISTRY}/library/busybox:1.28",
        PRIVATE_REPO,
        entrypoint=AMD64_ENTRYPOINT,
        cmd=["from-cmd"],
    )
    arm = push.image(PRIVATE_REPO, None, entrypoint=["/bin/echo", "arm64"], arch="arm64")
    push.index(PRIVATE_REPO, "v1", [(*amd, "linux/amd64"), (*arm, "linux/arm64")])
    return f"{cluster_config.AUTH_REGISTRY}/{PRIVATE_REPO}:v1"


def _pull_objects() -> list[dict[str, Any]]:
    user, password = cluster_config.AUTH_REGISTRY_USER
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    cfg = json.dumps({"auths": {cluster_config.AUTH_REGISTRY: {"auth": auth}}})
    meta = {"namespace": TASKS_NS}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "auth-pull", **meta},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(cfg.encode()).decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "puller", **meta},
            "imagePullSecrets": [{"name": "auth-pull"}],
        },
    ]


def _lookup_tasks(image: str) -> list[dict[str, Any]]:
    if not image:
        return []
    steps = ({"name": "cmd", "image": image}, {"name": "args", "image": image, "args": ["x y"]})
    return [
        _task("lookup-own", *steps, podTemplate={"imagePullSecrets": [{"name": "auth-pull"}]}),
        _task("lookup-account", *steps, podTemplate={"serviceAccountName": "puller"}),
        _task("lookup-denied", *steps),
    ]


@dataclass
class Installed:
    cluster: FullCluster
    refs: Refs


def _sh(name: str, script: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "command": ["sh", "-c", script], **fields}


def _task(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name, "namespace": TASKS_NS},
        "spec": {"steps": list(steps), **spec},
    }


def _with_commands(doc: dict[str, Any]) -> dict[str, Any]:
    """A seed example with each commandless step's ENTRYPOINT written out by hand."""
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] += "-cmd"
    for s in doc["spec"]["steps"]:
        if "command" in s or "script" in s:
            continue
        if "kubernetes-job-demo" in s["image"]:
            s["command"] = JOB_DEMO_ENTRYPOINT
        else:  # busybox: no ENTRYPOINT, so the args are the command
            s["command"], s["args"] = s["args"][:1], s["args"][1:]
    return doc


def _seed() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(deploy.SEED_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text().replace(PLACEHOLDER, BUSYBOX))
        doc["metadata"]["namespace"] = TASKS_NS
        docs += [doc, _with_commands(doc)]
    return docs


#: a sidecar serving one page on 127.0.0.1:8080, started once its port answers
WEB = {
    "name": "web",
    "image": BUSYBOX,
    "command": [
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-sidecar > /www/index.html && httpd -f -p 8080 -h /www",
    ],
    "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
}


def _sidecar_tasks() -> list[dict[str, Any]]:
    reads = _sh("get", "wget -qO- http://127.0.0.1:8080/")
    return [
        _task("sidecar-http", reads, sidecars=[WEB]),
        _task("sidecar-http-kubelet", reads, sidecars=[WEB], executor="kubelet"),
        # started (no probe) then crashing: the kubelet restarts it while the step runs
        _task(
            "sidecar-crash",
            _sh("waits", "sleep 25; echo done"),
            sidecars=[
                {"name": "flaky", "image": BUSYBOX, "command": ["sh", "-c", "sleep 2; exit 1"]}
            ],
        ),
        _task(
            "sidecar-never",
            _sh("never", "echo never"),
            sidecars=[{"name": "gone", "image": f"{cluster_config.REGISTRY}/nope/missing:1"}],
        ),
    ]


def _tasks(refs: Refs) -> list[dict[str, Any]]:
    ro_nonroot = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    return [
        *_seed(),
        *_lookup_tasks(refs.private),
        _task(
            "timeout",
            _sh("slow", "echo going; sleep 60", timeout="2s"),
            _sh("after", "echo never"),
        ),
        _task(
            "continue",
            _sh("fails", "echo failing; exit 3", onError="continue"),
            _sh("runs", "echo still here"),
        ),
        _task(
            "results",
            _sh(
                "make",
                "printf 'sha256:abc' > $(results.digest.path); printf 'two words' > "
                "$(results.note.path)",
                results=[{"name": "digest"}, {"name": "note", "description": "free text"}],
            ),
            {
                "name": "use",
                "image": BUSYBOX,
                "command": ["echo", "argv:$(steps.make.results.digest)"],
                "env": [{"name": "NOTE", "value": "env:$(steps.make.results.note)"}],
                "args": ["$NOTE"],  # not a shell: stays literal, proving exact argv
            },
            {
                "name": "script",
                "image": BUSYBOX,
                "script": 'echo "script:$(steps.make.results.digest) $NOTE2"',
                "env": [{"name": "NOTE2", "value": "$(steps.make.results.note)"}],
            },
        ),
        _task(
            "images",
            _sh("musl", "echo busybox ok"),
            {
                "name": "glibc",
                "image": refs.glibc,
                "command": ["python3", "-c", "import platform; print(platform.libc_ver()[0])"],
            },
            {
                "name": "static",
                "image": refs.static,
                "command": ["/step", "static ok", "$(results.r.path)", "from-static"],
                "results": [{"name": "r"}],
            },
            _sh("reads", "echo got $(steps.static.results.r)"),
        ),
        _task(
            "locked-down",
            _sh("whoami", "id -u"),
            {
                **_sh("second", "echo second as $(id -u); touch /x 2>&1 | grep -o Read-only"),
                "securityContext": ro_nonroot,
            },
            podTemplate={"securityContext": {"runAsUser": 65532, "runAsNonRoot": True}},
        ),
        *_sidecar_tasks(),
        _task(
            "retry-flaky",
            _sh(
                "flaky",
                "n=$(cat /workspace/count 2>/dev/null || echo 0); n=$((n + 1)); "
                'echo $n > /workspace/count; echo "attempt $n"; [ "$n" -ge 3 ]',
                retries=2,
                retryDelay="1s",
            ),
            _sh("reads", "echo count $(cat /workspace/count)"),
        ),
        _task(
            "max-not-sum",
            *(
                _sh(f"s{i}", "echo ok", resources={"requests": {"cpu": "1", "memory": "32Mi"}})
                for i in range(3)
            ),
        ),
    ]


def _apply_crd(cluster: FullCluster) -> None:
    """Helm installs crds/ only when absent: bring the cluster's CRD to this branch's (the
    README's upgrade step); the new fields are optional, older Tasks stay valid."""
    crds = str(chart.CHART_DIR / "crds")
    deploy.kubectl_out(cluster, "apply", "--server-side", "--force-conflicts", "-f", crds)


def _apply_tasks(cluster: FullCluster, path: Path) -> None:
    """Apply, re-applying the CRD when the cluster's is an older one (the cluster is shared:
    another checkout's test may have put its own CRD back meanwhile); 5 tries at most."""
    for _ in range(5):
        _apply_crd(cluster)
        proc = cluster.kubectl("apply", "-f", str(path), check=False)
        if proc.returncode == 0:
            return
        if "unknown field" not in proc.stderr:
            break
        time.sleep(2)
    raise AssertionError(f"kubectl apply -f {path}: {proc.stderr.strip()}")


def _diagnose(cluster: FullCluster) -> str:
    return deploy.diagnostics(cluster, NS, TASKS_NS)


@pytest.fixture(scope="module")
def installed(full_cluster: FullCluster) -> Iterator[Installed]:
    registry = full_cluster.registry
    if not registry:
        pytest.skip("no registry for this cluster: set TASKFLOW_TEST_REGISTRY=host:port")
    operator = deploy.build_and_push(registry)
    agent = operator.agent
    glibc = images.push_versioned(images.BASE_TAG, registry, "taskflow/python-base")
    static = images.push_versioned(images.build_static_image().tag, registry, "taskflow/static")
    private = _push_private() if registry == cluster_config.REGISTRY else ""
    print(f"\noperator={operator.ref}\nagent={agent}\nglibc={glibc}\nstatic={static}")
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    _apply_crd(full_cluster)
    proc = deploy.helm_install(full_cluster, operator)  # the chart's default executor: agent
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}\n{_diagnose(full_cluster)}")
    yield Installed(full_cluster, Refs(agent, glibc, static, private))
    full_cluster.helm("uninstall", deploy.RELEASE, "-n", NS, "--wait", check=False)
    full_cluster.kubectl("delete", "namespace", TASKS_NS, "--ignore-not-found", check=False)


@dataclass
class Finished:
    tasks: dict[str, dict[str, Any]]
    pods: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def finished(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    cluster = installed.cluster
    deploy.kubectl_out(cluster, "delete", "namespace", TASKS_NS, "--ignore-not-found")
    deploy.kubectl_out(cluster, "create", "namespace", TASKS_NS)
    tasks = _tasks(installed.refs)
    path: Path = tmp_path_factory.mktemp("agent") / "tasks.yaml"
    # the pull secret and service account first: a Task's lookup must find them
    objects = [*(_pull_objects() if installed.refs.private else []), *tasks]
    path.write_text(yaml.safe_dump_all(objects, allow_unicode=True))
    _apply_tasks(cluster, path)
    names = {t["metadata"]["name"] for t in tasks}
    done: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        proc = cluster.kubectl("get", "tasks", "-n", TASKS_NS, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        for item in json.loads(proc.stdout)["items"]:
            if (item.get("status") or {}).get("status") in ("Successful", "Failure"):
                done.setdefault(item["metadata"]["name"], item)
        return set(done) >= names

    started = time.monotonic()
    try:
        deploy.wait_for("the agent Tasks to finish", all_done, timeout=TASK_TIMEOUT)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; finished: {sorted(done)}\n{_diagnose(cluster)}")
    print(f"{len(names)} Tasks finished in {time.monotonic() - started:.0f}s")
    crd = deploy.kubectl_json(cluster, "get", "crd", "tasks.api.practice.com")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    if "executor" not in schema["properties"]:
        pytest.fail(
            "the shared cluster's Task CRD was replaced during the run (the API server then "
            "prunes the agent's fields on read); another checkout's tests put their own CRD "
            "(e.g. tests/integration/test_engine_operator.py): run again"
        )
    pods = {}
    for name, task in done.items():
        pod = task["status"].get("podName")
        if pod and task["status"].get("startTime"):
            pods[name] = deploy.kubectl_json(cluster, "get", "pod", "-n", TASKS_NS, pod)
    return Finished(done, pods)


def _status(f: Finished, name: str) -> dict[str, Any]:
    status: dict[str, Any] = f.tasks[name]["status"]
    return status


def _cond(f: Finished, name: str) -> dict[str, Any]:
    return next(c for c in _status(f, name)["conditions"] if c["type"] == "Succeeded")


def _steps(f: Finished, name: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in _status(f, name)["steps"]}


def _logs(i: Installed, f: Finished, name: str, step: str) -> str:
    pod = _status(f, name)["podName"]
    return deploy.kubectl_out(i.cluster, "logs", "-n", TASKS_NS, pod, "-c", step)


def _ms(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the seed ---------------------------------------------------------------------------------


SEED_NAMES = [
    "example-taskflow",
    "example-taskflow-script-test",
    "mytask-test-container-agent",
    "example-taskflow-error-test",
]


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seed_examples_unchanged_run_as_with_the_command_written_out(
    installed: Installed, finished: Finished, name: str
) -> None:
    """The image's ENTRYPOINT/CMD comes from the registry: the same outcome, step by step
    and line by line, as the copy with each ``command`` written out by hand."""
    plain, written = _status(finished, name), _status(finished, f"{name}-cmd")
    assert plain["status"] == written["status"], plain
    assert _cond(finished, name)["reason"] == _cond(finished, f"{name}-cmd")["reason"]
    for step in _steps(finished, name):
        plain_steps, written_steps = _steps(finished, name), _steps(finished, f"{name}-cmd")
        assert plain_steps[step]["state"] == written_steps[step]["state"]
        assert plain_steps[step].get("exitCode") == written_steps[step].get("exitCode")
        if plain_steps[step].get("startedAt"):
            ours = _logs(installed, finished, name, step)
            assert ours == _logs(installed, finished, f"{name}-cmd", step), step


def test_seed_examples_with_commands_run_in_order(installed: Installed, finished: Finished) -> None:
    st = _status(finished, "example-taskflow-cmd")
    assert st["status"] == "Successful", st
    assert _logs(installed, finished, "example-taskflow-cmd", "step1").strip() == "step1"
    assert "10) Hello from the Job" in _logs(installed, finished, "example-taskflow-cmd", "step3")
    steps = list(_steps(finished, "example-taskflow-cmd").values())
    for a, b in itertools.pairwise(steps):
        assert _ms(a["finishedAt"]) <= _ms(b["startedAt"]), steps
    assert _status(finished, "example-taskflow-script-test-cmd")["status"] == "Successful"
    out = _logs(installed, finished, "example-taskflow-script-test-cmd", "step3").split("\n")
    assert "step4-2" in out
    custom = "mytask-test-container-agent-cmd"
    assert _status(finished, custom)["status"] == "Successful", _status(finished, custom)
    assert _logs(installed, finished, custom, "step4").strip() == "step test2"


def test_seed_error_example_fails_at_step2_and_step3_never_runs(
    installed: Installed, finished: Finished
) -> None:
    for name in ("example-taskflow-error-test-cmd",):
        cond = _cond(finished, name)
        assert cond["reason"] == "StepFailed", cond
        assert "step step2 (2/3) failed with exit code 1" in cond["message"]
        steps = _steps(finished, name)
        assert steps["step2"]["exitCode"] == 1
        assert steps["step3"]["state"] == "NotRun", steps
        assert not steps["step3"].get("startedAt")
        assert _logs(installed, finished, name, "step3") == ""  # its command never ran


# --- what only the agent does -------------------------------------------------------------------


def test_step_timeout(installed: Installed, finished: Finished) -> None:
    cond = _cond(finished, "timeout")
    assert cond["reason"] == "StepTimeout", cond
    assert "step slow (1/2) timed out" in cond["message"]
    steps = _steps(finished, "timeout")
    assert steps["slow"]["reason"] == "TimedOut"
    took = _ms(steps["slow"]["finishedAt"]) - _ms(steps["slow"]["startedAt"])
    assert 1.9 <= took.total_seconds() < 10, steps
    assert steps["after"]["state"] == "NotRun"
    # the step's output, then the agent's own error line (stderr, prefixed)
    assert _logs(installed, finished, "timeout", "slow") == (
        "going\ntaskflow-agent: step slow: timed out after 2s\n"
    )


def test_on_error_continue(installed: Installed, finished: Finished) -> None:
    assert _status(finished, "continue")["status"] == "Successful"
    steps = _steps(finished, "continue")
    assert (steps["fails"]["exitCode"], steps["fails"]["reason"]) == (3, "ContinuedOnError")
    assert steps["runs"]["exitCode"] == 0
    assert _logs(installed, finished, "continue", "runs").strip() == "still here"


def test_results_between_steps_and_into_a_script(installed: Installed, finished: Finished) -> None:
    assert _status(finished, "results")["status"] == "Successful", _status(finished, "results")
    make = _steps(finished, "results")["make"]
    assert make["results"] == [
        {"name": "digest", "value": "sha256:abc"},
        {"name": "note", "value": "two words"},
    ]
    # kubectl logs shows exactly the step's own output
    assert _logs(installed, finished, "results", "use") == "argv:sha256:abc $NOTE\n"
    assert _logs(installed, finished, "results", "script") == "script:sha256:abc two words\n"


def test_musl_glibc_and_static_images(installed: Installed, finished: Finished) -> None:
    assert _status(finished, "images")["status"] == "Successful", _status(finished, "images")
    assert _logs(installed, finished, "images", "musl").strip() == "busybox ok"
    assert _logs(installed, finished, "images", "glibc").strip() == "glibc"
    static = _logs(installed, finished, "images", "static").split("\n")
    assert static[:3] == ["static ok", "/taskflow/run/static/results/r", "from-static"]
    assert _logs(installed, finished, "images", "reads").strip() == "got from-static"


def test_read_only_root_and_non_root(installed: Installed, finished: Finished) -> None:
    assert _status(finished, "locked-down")["status"] == "Successful"
    assert _logs(installed, finished, "locked-down", "whoami").strip() == "65532"
    second = _logs(installed, finished, "locked-down", "second").split("\n")
    assert second[:2] == ["second as 65532", "Read-only"], second


def test_requests_are_the_max_not_the_sum(finished: Finished) -> None:
    assert _status(finished, "max-not-sum")["status"] == "Successful", _status(
        finished, "max-not-sum"
    )
    spec = finished.pods["max-not-sum"]["spec"]
    assert spec["resources"]["requests"] == {"cpu": "1", "memory": "32Mi"}
    assert all(not c.get("resources") for c in spec["containers"])  # the server adds {}


# --- sidecars and step retries -------------------------------------------------------------------


def _events(i: Installed, name: str) -> list[dict[str, Any]]:
    out = deploy.kubectl_json(
        i.cluster,
        "get",
        "events",
        "-n",
        TASKS_NS,
        "--field-selector",
        f"involvedObject.kind=Task,involvedObject.name={name}",
    )
    items: list[dict[str, Any]] = out["items"]
    return items


@pytest.mark.parametrize("name", ["sidecar-http", "sidecar-http-kubelet"])
def test_a_sidecar_serves_the_steps_and_the_kubelet_stops_it(
    installed: Installed, finished: Finished, name: str
) -> None:
    assert _status(finished, name)["status"] == "Successful", _status(finished, name)
    assert _logs(installed, finished, name, "get").strip() == "hello-from-sidecar"
    pod = finished.pods[name]
    assert pod["status"]["phase"] == "Succeeded"  # by its steps alone, never Error
    [web] = [c for c in pod["status"]["initContainerStatuses"] if c["name"] == "web"]
    assert "terminated" in web["state"], web  # stopped by the kubelet after the steps
    [side] = _status(finished, name)["sidecars"]
    assert side["name"] == "web"


def test_a_crashing_sidecar_is_restarted_and_reported(
    installed: Installed, finished: Finished
) -> None:
    status = _status(finished, "sidecar-crash")
    assert status["status"] == "Successful", status
    [flaky] = status["sidecars"]
    assert flaky["name"] == "flaky"
    assert flaky["restarts"] >= 1, flaky
    reasons = [e["reason"] for e in _events(installed, "sidecar-crash")]
    assert "SidecarRestarted" in reasons, reasons


def test_a_sidecar_that_never_starts_fails_the_task(finished: Finished) -> None:
    status = _status(finished, "sidecar-never")
    cond = _cond(finished, "sidecar-never")
    assert (status["status"], cond["reason"]) == ("Failure", "SidecarFailed"), status
    assert "gone" in cond["message"]
    assert _steps(finished, "sidecar-never")["never"]["state"] in ("NotRun", "Waiting")


def test_a_flaky_step_is_retried_in_place_keeping_the_workspace(
    installed: Installed, finished: Finished
) -> None:
    status = _status(finished, "retry-flaky")
    assert status["status"] == "Successful", status
    flaky = _steps(finished, "retry-flaky")["flaky"]
    assert (flaky["exitCode"], flaky["attempts"]) == (0, 3), flaky
    assert _logs(installed, finished, "retry-flaky", "reads").strip() == "count 3"
    log = _logs(installed, finished, "retry-flaky", "flaky")
    assert "attempt 1" in log
    assert "attempt 3" in log
    retrying = [e for e in _events(installed, "retry-flaky") if e["reason"] == "Retrying"]
    assert retrying, _events(installed, "retry-flaky")


# --- ENTRYPOINT/CMD from an authenticated registry ----------------------------------------------


def _needs_private(installed: Installed) -> None:
    if not installed.refs.private:
        pytest.skip("needs the harness's auth registry")


@pytest.mark.parametrize("name", ["lookup-own", "lookup-account"])
def test_entrypoint_lookup_with_pull_secrets(
    installed: Installed, finished: Finished, name: str
) -> None:
    _needs_private(installed)
    assert _status(finished, name)["status"] == "Successful", _status(finished, name)
    # neither command nor args: ENTRYPOINT + CMD; args only: ENTRYPOINT + args
    assert _logs(installed, finished, name, "cmd") == "amd64-entrypoint from-cmd\n"
    assert _logs(installed, finished, name, "args") == "amd64-entrypoint x y\n"
    # the platforms differ, so the agent chose amd64 on this node at run time
    container = finished.pods[name]["spec"]["containers"][0]
    assert "--arch" in container["command"], container["command"]


def test_entrypoint_lookup_without_a_pull_secret_fails(
    installed: Installed, finished: Finished
) -> None:
    _needs_private(installed)
    cond = _cond(finished, "lookup-denied")
    assert _status(finished, "lookup-denied")["status"] == "Failure"
    assert cond["reason"] == "ImageLookupFailed", cond
    assert "401 Unauthorized: UNAUTHORIZED: authentication required" in cond["message"], cond
    assert not _status(finished, "lookup-denied").get("podName")
