"""What a step cannot do, the operator's side: taskflow's volumes and paths are refused in
steps and the pod template (``spec_problem``, the backstop of the CRD's rules), and each agent
is told the pod's real grace period and the kubelet's termination-message budget."""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskflow.api import decode_pod
from taskflow.api.budget import message_budget, pod_message_budget
from taskflow.api.task import INSTALL_CONTAINER
from taskflow.api.validate import reserved_path, spec_problem
from taskflow.render import RenderError, render_pod
from taskflow.settings import Settings
from tests.unit.builders import step, task

AGENT = Settings(default_executor="agent", agent_image="reg.local/agent:1")
KUBELET = Settings(default_executor="kubelet")
DATA = {"name": "data", "emptyDir": {}}


def _flag(command: list[str], flag: str) -> str:
    head = command[: command.index("--")]
    assert head.count(flag) == 1, head
    return head[head.index(flag) + 1]


def _agent_flags(pod: dict[str, Any], flag: str) -> list[str]:
    return [_flag(c["command"], flag) for c in pod["spec"]["containers"]]


# --- the kubelet's budget ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("containers", "init", "ephemeral", "expected"),
    [
        # 12288 // n, at most 4096 (pkg/kubelet/status/status_manager.go, normalizeStatus)
        (1, 0, 0, 4096),
        (1, 1, 0, 4096),
        (3, 0, 0, 4096),
        (3, 1, 0, 3072),
        (14, 0, 0, 877),
        (14, 1, 0, 819),
        (50, 0, 0, 245),
        (50, 1, 0, 240),
        (64, 0, 0, 192),
        (64, 1, 0, 189),
        # ephemeral containers count like the others
        (3, 1, 1, 2457),
        (64, 1, 1, 186),
        (1, 0, 5, 2048),
        (0, 0, 0, 4096),
    ],
)
def test_message_budget(containers: int, init: int, ephemeral: int, expected: int) -> None:
    assert message_budget(containers, init, ephemeral) == expected


@pytest.mark.parametrize(
    ("steps", "limit"), [(1, 4096), (3, 2457), (14, 768), (50, 236), (64, 186)]
)
def test_each_agent_is_told_the_budget_of_its_pod(steps: int, limit: int) -> None:
    t = task(*(step(f"s{i}", command=["true"]) for i in range(steps)), executor="agent")
    pod = render_pod(t, AGENT)
    assert _agent_flags(pod, "--message-limit") == [str(limit)] * steps
    # true for the pod as created (steps + install container), and still with one
    # `kubectl debug` container added; a second one may cut it
    created = decode_pod(pod)
    assert pod_message_budget(created) >= limit
    created.spec.ephemeral_containers.append(created.spec.containers[0])
    assert pod_message_budget(created) == limit
    created.spec.ephemeral_containers.append(created.spec.containers[0])
    assert pod_message_budget(created) <= limit


def test_kubelet_pods_have_no_agent_flags() -> None:
    pod = render_pod(task(step("a", command=["true"])), KUBELET)
    assert "--message-limit" not in str(pod)
    assert "--grace" not in str(pod)


# --- the grace period ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "grace"),
    [
        (None, "30s"),  # Kubernetes' default, as the CRD's description says
        ({}, "30s"),
        ({"terminationGracePeriodSeconds": 1}, "1s"),
        ({"terminationGracePeriodSeconds": 0}, "0s"),
        ({"terminationGracePeriodSeconds": 120}, "120s"),
    ],
)
def test_grace_is_the_pods(template: dict[str, Any] | None, grace: str) -> None:
    spec: dict[str, Any] = {"executor": "agent"}
    if template is not None:
        spec["podTemplate"] = template
    t = task(step("a", command=["true"], timeout="2s"), step("b", command=["true"]), **spec)
    pod = render_pod(t, AGENT)
    assert _agent_flags(pod, "--grace") == [grace, grace]
    assert pod["spec"].get("terminationGracePeriodSeconds") == (template or {}).get(
        "terminationGracePeriodSeconds"
    )


def test_the_grace_flag_is_one_the_agent_reads() -> None:
    from taskflow_agent._args import StepArgs
    from taskflow_agent.cli import parse

    pod = render_pod(
        task(
            step("a", command=["true"], timeout="2s"),
            executor="agent",
            podTemplate={"terminationGracePeriodSeconds": 1},
        ),
        AGENT,
    )
    command = pod["spec"]["containers"][0]["command"]
    # the agent's side of --message-limit belongs to another change; parse what it knows
    known = [a for a in command[1:] if a]
    i = known.index("--message-limit")
    parsed = parse(known[:i] + known[i + 2 :])
    assert isinstance(parsed, StepArgs)
    assert parsed.grace == 1.0
    assert parsed.timeout == 2.0


def test_a_step_ignoring_sigterm_is_killed_one_grace_after_its_timeout(tmp_path: Path) -> None:
    # the rendered command line, run by the real agent: timeout 2s, the pod's grace 1 s
    t = task(
        step("a", command=["sh", "-c", "trap '' TERM; exec sleep 30"], timeout="2s"),
        executor="agent",
        podTemplate={"terminationGracePeriodSeconds": 1},
    )
    command = render_pod(t, AGENT)["spec"]["containers"][0]["command"]
    opts = command[2 : command.index("--")]
    i = opts.index("--termination-path")
    opts[i + 1] = str(tmp_path / "termination-log")
    # the agent's side of --message-limit comes in a change of its own
    if "--message-limit" in opts and "--message-limit" not in parse_help():
        j = opts.index("--message-limit")
        del opts[j : j + 2]
    argv = [sys.executable, "-m", "taskflow_agent", "step", *opts, "--run-dir", str(tmp_path)]
    argv += command[command.index("--") :]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    elapsed = time.monotonic() - start
    assert b'"timedOut":true' in (tmp_path / "termination-log").read_bytes(), done.stderr
    print(f"timeout 2s, grace 1s: the agent ended after {elapsed:.2f}s")
    assert 2.5 < elapsed < 5.0, elapsed  # not 2 s + the agent's own default of 10 s


def parse_help() -> str:
    from taskflow_agent.cli import USAGE

    return USAGE


# --- the install container is in the pod as status reads it -----------------------------------


def test_install_container_name_and_image_reach_the_read_model() -> None:
    pod = decode_pod(render_pod(task(step("a", command=["true"]), executor="agent"), AGENT))
    (install,) = pod.spec.init_containers
    assert (install.name, install.image) == (INSTALL_CONTAINER, AGENT.agent_image)


# --- taskflow's volumes are taskflow's --------------------------------------------------------

RESERVED_MOUNTS = [
    "taskflow-bin",
    "taskflow-run-0",
    "taskflow-run-1",
    "taskflow-run-63",
    "taskflow-scripts",
    "taskflow-anything",
]
RESERVED_PATHS = [
    "/taskflow",
    "/taskflow/",
    "/taskflow/bin",
    "/taskflow/bin/",
    "/taskflow/run/a",
    "/taskflow/run/b/state.json",
    "/taskflow/scripts/a",
    "//taskflow/run/b",
    "/taskflow//run/b",
    "taskflow/run/b",
    "/x/../taskflow/run/b",
    "/./taskflow/bin",
    "/.",
    "./taskflow",
    "taskflow",
    # ".." elements anywhere, even where harmless: the check stays one cheap scan
    "/workspace/..",
    "/a/../b",
    "../taskflow",
    "..",
]
FREE_PATHS = [
    "/data",
    "/taskflowx",
    "/opt/taskflow/run",
    "/workspace/.cache",
    "/.config",
    "/a/./b",
    "/x/..y",
    "/x/y..",
    "/...",
]


def _with_mount(name: str, path: str, executor: str) -> Any:
    return task(
        step("a", command=["true"]),
        step("b", command=["true"], volumeMounts=[{"name": name, "mountPath": path}]),
        executor=executor,
        podTemplate={"volumes": [DATA]},
    )


@pytest.mark.parametrize("executor", ["agent", "kubelet"])
@pytest.mark.parametrize("name", RESERVED_MOUNTS)
def test_a_step_may_not_mount_taskflows_volumes(executor: str, name: str) -> None:
    t = _with_mount(name, "/x", executor)
    expected = f"step b: volumeMount {name} is taskflow's own volume"
    assert (spec_problem(t) or "").startswith(expected)
    with pytest.raises(RenderError, match=re.escape(expected)):
        render_pod(t, AGENT)


@pytest.mark.parametrize("executor", ["agent", "kubelet"])
@pytest.mark.parametrize("path", RESERVED_PATHS)
def test_a_step_may_not_mount_under_taskflow(executor: str, path: str) -> None:
    t = _with_mount("data", path, executor)
    expected = f"step b: volumeMount data at {path}: mount paths under /taskflow are taskflow's"
    assert (spec_problem(t) or "").startswith(expected)
    with pytest.raises(RenderError, match=re.escape(expected)):
        render_pod(t, AGENT)


@pytest.mark.parametrize("path", FREE_PATHS)
def test_other_mount_paths_and_the_workspace_are_the_steps(path: str) -> None:
    for name in ("data", "taskflow-workspace"):
        t = _with_mount(name, path, "agent")
        assert spec_problem(t) is None
        mounts = render_pod(t, AGENT)["spec"]["containers"][1]["volumeMounts"]
        assert mounts[0] == {"name": name, "mountPath": path}


@pytest.mark.parametrize("name", ["taskflow-bin", "taskflow-run-0", "taskflow-workspace"])
def test_the_pod_template_may_not_define_taskflows_volumes(name: str) -> None:
    t = task(step("a", command=["true"]), podTemplate={"volumes": [{"name": name, "emptyDir": {}}]})
    assert spec_problem(t) == (
        f"podTemplate.volumes: volume {name} is reserved: names starting with taskflow- are "
        "taskflow's own volumes"
    )


def _cleaned(path: str) -> str:
    """Where the runtime mounts ``path`` (relative paths count from /)."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


_ELEMENT = st.sampled_from(["", ".", "..", "taskflow", "taskflowx", "x", ".x", "bin"])


@given(st.lists(_ELEMENT, min_size=1, max_size=6).map("/".join))
def test_every_path_that_cleans_under_taskflow_is_reserved(path: str) -> None:
    cleaned = _cleaned(path)
    if cleaned == "/taskflow" or cleaned.startswith("/taskflow/"):
        assert reserved_path(path), (path, cleaned)
    elements = path.split("/")
    if ".." not in elements and reserved_path(path):  # nothing else refused but //, /./, ./
        assert cleaned.startswith("/taskflow") or path.startswith(("//", "/.", ".")), path


def test_the_checks_are_cheap() -> None:
    # 64 steps x 64 mounts of 4096-character paths: the backstop runs on every reconcile
    mounts = [{"name": "data", "mountPath": "/" + "d" * 4095} for _ in range(64)]
    t = task(
        *(step(f"s{i}", volumeMounts=mounts) for i in range(64)),
        podTemplate={"volumes": [DATA]},
    )
    start = time.perf_counter()
    assert spec_problem(t) is None
    assert time.perf_counter() - start < 0.5


# --- sidecars: the same rule on their mounts ---------------------------------------------------


def _sidecar_mount(name: str, path: str, executor: str) -> Any:
    return task(
        step("a", command=["true"]),
        executor=executor,
        podTemplate={"volumes": [DATA]},
        sidecars=[
            {"name": "db", "image": "db:1", "volumeMounts": [{"name": name, "mountPath": path}]}
        ],
    )


@pytest.mark.parametrize("executor", ["agent", "kubelet"])
@pytest.mark.parametrize("name", RESERVED_MOUNTS)
def test_a_sidecar_may_not_mount_taskflows_volumes(executor: str, name: str) -> None:
    t = _sidecar_mount(name, "/x", executor)
    expected = (
        f"sidecar db: volumeMount {name} is taskflow's own volume: a sidecar may mount "
        "taskflow-workspace and podTemplate.volumes only"
    )
    assert spec_problem(t) == expected
    with pytest.raises(RenderError, match=re.escape(expected)):
        render_pod(t, AGENT)


@pytest.mark.parametrize("path", RESERVED_PATHS)
def test_a_sidecar_may_not_mount_under_taskflow(path: str) -> None:
    t = _sidecar_mount("data", path, "agent")
    expected = f"sidecar db: volumeMount data at {path}: mount paths under /taskflow are taskflow's"
    assert (spec_problem(t) or "").startswith(expected)


@pytest.mark.parametrize("name", ["data", "taskflow-workspace"])
def test_a_sidecar_may_mount_the_workspace_and_the_templates_volumes(name: str) -> None:
    for executor in ("agent", "kubelet"):
        t = _sidecar_mount(name, "/srv", executor)
        assert spec_problem(t) is None
        (db,) = [c for c in render_pod(t, AGENT)["spec"]["initContainers"] if c["name"] == "db"]
        assert db["volumeMounts"] == [{"name": name, "mountPath": "/srv"}]
