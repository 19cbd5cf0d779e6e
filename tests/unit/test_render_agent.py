"""The agent executor's pod (docs/agent.md) and the choice of executor."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskflow.api import decode_task
from taskflow.api.executor import agent_problem, executor_of
from taskflow.api.task import INSTALL_CONTAINER, MAX_RETRIES, MAX_RETRY_DELAY_SECONDS
from taskflow.render import (
    RenderError,
    pod_resources,
    quantity,
    render_pod,
)
from taskflow.settings import Settings
from tests.unit.builders import step, task

AGENT = Settings(default_executor="agent", agent_image="reg.local/agent@sha256:" + "1" * 64)
KUBELET = Settings(default_executor="kubelet")
BIN = "/taskflow/bin/taskflow-agent"
SEED = Path(__file__).parent.parent / "data" / "seed"


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


def _mounts(c: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {m["mountPath"]: (m["name"], bool(m.get("readOnly"))) for m in c["volumeMounts"]}


# --- which executor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "steps", "settings", "expected"),
    [
        ({}, [step("a", command=["x"])], KUBELET, "kubelet"),
        ({}, [step("a", command=["x"])], AGENT, "agent"),
        ({"executor": "kubelet"}, [step("a", command=["x"])], AGENT, "kubelet"),
        ({"executor": "agent"}, [step("a", command=["x"])], KUBELET, "agent"),
        ({}, [step("a", command=["x"], timeout="1s")], KUBELET, "agent"),
        ({}, [step("a", command=["x"], onError="continue")], KUBELET, "agent"),
        ({}, [step("a", command=["x"], results=[{"name": "r"}])], KUBELET, "agent"),
        ({}, [step("a", command=["x"], retries=1)], KUBELET, "agent"),
        ({}, [step("a", command=["x"], retryDelay="2s")], KUBELET, "agent"),
        ({}, [step("a", command=["x"], retries=0)], KUBELET, "kubelet"),
    ],
)
def test_executor_of(
    spec: dict[str, Any], steps: list[dict[str, Any]], settings: Settings, expected: str
) -> None:
    assert executor_of(task(*steps, **spec), settings.default_executor) == expected


@pytest.mark.parametrize("fname", sorted(p.name for p in SEED.glob("*.yaml")))
def test_kubelet_pods_do_not_depend_on_agent_settings(fname: str) -> None:
    t = decode_task(yaml.safe_load((SEED / fname).read_text()) | {"metadata": {"name": "x"}})
    assert json.dumps(render_pod(t, KUBELET)) == json.dumps(
        render_pod(t, Settings(default_executor="kubelet", agent_image="elsewhere/agent:1"))
    )
    assert "taskflow-agent" not in json.dumps(render_pod(t, KUBELET))


# --- the pod ----------------------------------------------------------------------------------


def test_install_container_and_step_commands() -> None:
    t = task(
        step("a", command=["sh", "-c", "echo  two  spaces"], args=["--x", "$(HOME)"]),
        step("b", command=["make"], timeout="1m30s", onError="continue"),
        step("c", script="echo hi", args=["p"], results=[{"name": "r1"}, {"name": "r2"}]),
        executor="agent",
    )
    pod = render_pod(t, AGENT)
    spec = pod["spec"]
    assert spec["initContainers"] == [
        {
            "name": INSTALL_CONTAINER,
            "image": AGENT.agent_image,
            "command": ["/taskflow-agent", "install", "/taskflow/bin"],
            "volumeMounts": [{"name": "taskflow-bin", "mountPath": "/taskflow/bin"}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            # restricted Pod Security whatever the pod says (test_e2e_podsecurity.py)
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
    ]
    cs = _containers(pod)
    assert list(cs) == ["a", "b", "c"]  # all regular containers, in spec order
    # 3 steps + install + 1 ephemeral of headroom: 12288 // 5
    tail = ["--grace", "30s", "--message-limit", "2457", "--termination-path"]
    tail += ["/dev/termination-log", "--"]
    assert cs["a"]["command"] == [
        BIN,
        "step",
        "--name",
        "a",
        *tail,
        "sh",
        "-c",
        "echo  two  spaces",
        "--x",
        "$(HOME)",
    ]
    assert cs["b"]["command"] == [
        BIN,
        "step",
        "--name",
        "b",
        "--prev",
        "a",
        "--timeout",
        "1m30s",
        "--on-error",
        "continue",
        *tail,
        "make",
    ]
    assert cs["c"]["command"] == [
        BIN,
        "step",
        "--name",
        "c",
        "--prev",
        "b",
        "--result",
        "r1",
        "--result",
        "r2",
        "--script",
        "/taskflow/scripts/c",
        *tail,
        "p",
    ]
    for c in cs.values():
        assert "args" not in c
        assert c["terminationMessagePolicy"] == "File"
        assert not {"timeout", "onError", "results"} & set(c)
    assert pod["metadata"]["annotations"] == {"script.api.practice.com/c": "#!/bin/sh\necho hi"}


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({}, []),
        ({"retries": 0, "retryDelay": "5s"}, []),  # nothing to retry: the delay is moot
        ({"retries": 2}, ["--retries", "2", "--retry-delay", "1s"]),
        ({"retries": 10, "retryDelay": "250ms"}, ["--retries", "10", "--retry-delay", "250ms"]),
        (
            {"retries": 1, "retryDelay": "1m", "timeout": "30s", "onError": "continue"},
            ["--timeout", "30s", "--retries", "1", "--retry-delay", "1m", "--on-error", "continue"],
        ),
    ],
)
def test_retry_flags(fields: dict[str, Any], flags: list[str]) -> None:
    t = task(step("a", command=["make"], **fields), executor="agent")
    c = _containers(render_pod(t, AGENT))["a"]
    head = [BIN, "step", "--name", "a"]
    tail = ["--grace", "30s", "--message-limit", "4096", "--termination-path"]
    assert c["command"] == [*head, *flags, *tail, "/dev/termination-log", "--", "make"]
    assert not {"retries", "retryDelay"} & set(c)


@pytest.mark.parametrize(("fields", "delay"), [({}, 1.0), ({"retryDelay": "1m30s"}, 90.0)])
def test_the_retry_flags_are_ones_the_agent_reads(fields: dict[str, Any], delay: float) -> None:
    from taskflow_agent._args import MAX_RETRIES as AGENT_MAX_RETRIES
    from taskflow_agent._args import RETRY_DELAY_MAX, StepArgs
    from taskflow_agent.cli import parse

    t = task(step("a", command=["make"], retries=MAX_RETRIES, **fields), executor="agent")
    parsed = parse(_containers(render_pod(t, AGENT))["a"]["command"][1:])
    assert isinstance(parsed, StepArgs)
    assert (parsed.retries, parsed.retry_delay) == (MAX_RETRIES, delay)
    # the two packages share no code: their limits are the same numbers
    assert (AGENT_MAX_RETRIES, RETRY_DELAY_MAX) == (MAX_RETRIES, MAX_RETRY_DELAY_SECONDS)


def test_a_task_without_retries_renders_as_before() -> None:
    plain = task(step("a", command=["make"]), step("b", script="x"), executor="agent")
    zero = task(step("a", command=["make"], retries=0), step("b", script="x"), executor="agent")
    assert json.dumps(render_pod(zero, AGENT)) == json.dumps(render_pod(plain, AGENT))


def test_run_directories_rw_in_own_step_ro_later_absent_earlier() -> None:
    t = task(*(step(n, command=["true"]) for n in "abc"), executor="agent")
    pod = render_pod(t, AGENT)
    cs = _containers(pod)
    run = {
        name: {p: v for p, v in _mounts(c).items() if p.startswith("/taskflow/run/")}
        for name, c in cs.items()
    }
    assert run == {
        "a": {"/taskflow/run/a": ("taskflow-run-0", False)},
        "b": {
            "/taskflow/run/a": ("taskflow-run-0", True),
            "/taskflow/run/b": ("taskflow-run-1", False),
        },
        "c": {
            "/taskflow/run/a": ("taskflow-run-0", True),
            "/taskflow/run/b": ("taskflow-run-1", True),
            "/taskflow/run/c": ("taskflow-run-2", False),
        },
    }
    for c in cs.values():
        assert _mounts(c)["/taskflow/bin"] == ("taskflow-bin", True)
        assert _mounts(c)["/workspace"] == ("taskflow-workspace", False)
    names = [v["name"] for v in pod["spec"]["volumes"]]
    assert names == [
        "taskflow-workspace",
        "taskflow-bin",
        "taskflow-run-0",
        "taskflow-run-1",
        "taskflow-run-2",
    ]


def test_result_paths_are_substituted_at_render_time() -> None:
    t = task(
        step(
            "a",
            command=["sh", "-c", "echo x > $(results.out.path); echo $(results.other.path)"],
            args=["$(results.out.path)"],
            env=[{"name": "P", "value": "at $(results.out.path)"}, {"name": "Q", "valueFrom": {}}],
            results=[{"name": "out"}],
        ),
        step(
            "b",
            script="cat $(results.r.path) $(steps.a.results.out)",
            results=[{"name": "r"}],
        ),
    )
    pod = render_pod(t, KUBELET)  # results make it an agent Task
    cs = _containers(pod)
    assert cs["a"]["command"][-3:] == [
        "-c",
        "echo x > /taskflow/run/a/results/out; echo $(results.other.path)",  # undeclared: kept
        "/taskflow/run/a/results/out",
    ]
    assert cs["a"]["env"] == [
        {"name": "P", "value": "at /taskflow/run/a/results/out"},
        {"name": "Q", "valueFrom": {}},
    ]
    assert pod["metadata"]["annotations"]["script.api.practice.com/b"] == (
        "#!/bin/sh\ncat /taskflow/run/b/results/r $(steps.a.results.out)"  # the agent's part
    )


@pytest.mark.parametrize(
    ("steps", "executor", "problem"),
    [
        ([step("a", command=["x"], timeout="1s")], "kubelet", "need executor: agent"),
        (
            [step("a", command=["x"]), step("b", command=["x"], retries=2)],
            "kubelet",
            "retries and retryDelay of a step need executor: agent (spec.executor is kubelet)",
        ),
        ([step("a", command=["x"], retryDelay="5s")], "kubelet", "retries and retryDelay"),
        (
            [step("a", command=["x"], retries=1, timeout="1s")],
            "kubelet",
            "timeout, onError and results of a step need executor: agent",
        ),
        ([step(INSTALL_CONTAINER, command=["x"])], "agent", "taken by the agent's install"),
        (
            [step("a", command=["echo", "$(steps.zz.results.r)"])],
            "agent",
            "step a: $(steps.zz.results.r) names no step of this Task",
        ),
        (
            [step("a", command=["$(steps.b.results.r)"]), step("b", command=["x"])],
            "agent",
            "names a step that has not run before it",
        ),
        (
            [step("a", command=["$(steps.a.results.r)"], results=[{"name": "r"}])],
            "agent",
            "names a step that has not run before it",
        ),
        (
            [
                step("a", command=["x"], results=[{"name": "r"}]),
                step("b", env=[{"name": "E", "value": "$(steps.a.results.q)"}], command=["y"]),
            ],
            "agent",
            "step b: $(steps.a.results.q): step a declares no result q",
        ),
        (
            [
                step("a", command=["x"], results=[{"name": "r"}]),
                step("b", script="$(steps.a.results.s)"),
            ],
            "agent",
            "declares no result s",
        ),
    ],
)
def test_spec_problems_of_the_agent(
    steps: list[dict[str, Any]], executor: str, problem: str
) -> None:
    t = task(*steps, executor=executor)
    assert problem in (agent_problem(t, AGENT.default_executor) or "")
    with pytest.raises(RenderError):
        render_pod(t, AGENT)


def test_valid_references_and_lookalikes_pass() -> None:
    t = task(
        step("a", command=["x"], results=[{"name": "r"}]),
        step("b", command=["$(steps.a.results.r)", "$(date)", "$(steps.A.results.r)"]),
        executor="agent",
    )
    assert agent_problem(t, AGENT.default_executor) is None
    # under the kubelet the same text is only text
    k = task(step("a", command=["echo", "$(steps.zz.results.r)"]), executor="kubelet")
    assert agent_problem(k, AGENT.default_executor) is None


# --- requests: max, not sum ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("64Mi", Decimal(64 * 2**20)),
        ("128Ki", Decimal(128 * 2**10)),
        ("1k", Decimal(1000)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("2E-3", Decimal("0.002")),
        (2, Decimal(2)),
    ],
)
def test_quantity(text: str | int, value: Decimal) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1mi", "1ki", "1K", "1 Gi"])
def test_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        quantity(text)


def _res(**kw: Any) -> dict[str, Any]:
    return {"resources": kw}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([{}, {}], None),
        (
            [
                _res(requests={"cpu": "500m", "memory": "1Gi"}),
                _res(requests={"cpu": "2", "memory": "64Mi"}),
            ],
            {"requests": {"cpu": "2", "memory": "1Gi"}},
        ),
        # a limit only when every step has one (else a step without one would be capped)
        (
            [_res(limits={"memory": "128Mi"}), _res(requests={"memory": "64Mi"})],
            {"requests": {"memory": "128Mi"}},
        ),
        (
            [_res(limits={"memory": "128Mi"}), _res(limits={"memory": "1G"})],
            {"requests": {"memory": "1G"}, "limits": {"memory": "1G"}},
        ),
        ([_res(requests={"ephemeral-storage": "1Gi"}), {}], None),
    ],
)
def test_pod_level_resources_are_the_max(
    resources: list[dict[str, Any]], expected: dict[str, Any] | None
) -> None:
    t = task(*(step(f"s{i}", command=["x"], **r) for i, r in enumerate(resources)))
    assert pod_resources(list(t.spec.steps)) == expected


def test_containers_keep_only_what_the_pod_level_cannot_take() -> None:
    t = task(
        step("a", command=["x"], **_res(requests={"cpu": "1", "ephemeral-storage": "1Gi"})),
        step("b", command=["x"], **_res(limits={"cpu": "2"})),
        executor="agent",
    )
    pod = render_pod(t, AGENT)
    cs = _containers(pod)
    assert cs["a"]["resources"] == {"requests": {"ephemeral-storage": "1Gi"}}
    assert "resources" not in cs["b"]
    assert pod["spec"]["resources"] == {"requests": {"cpu": "2"}}


def test_the_default_agent_image_is_the_operators_version() -> None:
    from taskflow import __version__

    pod = render_pod(task(step("a", command=["x"]), executor="agent"), KUBELET)
    assert pod["spec"]["initContainers"][0]["image"] == f"taskflow/agent:{__version__}"
