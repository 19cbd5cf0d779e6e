"""Native sidecars in both executors' pods: init containers with ``restartPolicy: Always``
before the steps (after the agent's install container), the agent pod's pod-level requests
with them, and a Task without sidecars rendering exactly as before they existed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskflow.api import load_task_yaml
from taskflow.api.task import INSTALL_CONTAINER, Task
from taskflow.api.validate import spec_problem
from taskflow.render import (
    agent_message_limit,
    format_quantity,
    pod_resources,
    quantity,
    render_pod,
)
from taskflow.settings import Settings
from tests.unit.builders import step, task

AGENT = Settings(default_executor="agent", agent_image="reg.local/agent:1")
KUBELET = Settings(default_executor="kubelet")
SEED = Path(__file__).parent.parent / "data" / "seed"
#: pods rendered before spec.sidecars existed (`python -m tests.unit.test_render_sidecars`
#: at that commit wrote it); a Task without sidecars must still render to exactly these
GOLDEN = Path(__file__).parent.parent / "data" / "pods_without_sidecars.json"


def sidecar(name: str, image: str = "busybox:1.36", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


HTTPD = sidecar(
    "web",
    command=["httpd", "-f", "-p", "8080"],
    ports=[{"containerPort": 8080}],
    startupProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    readinessProbe={"httpGet": {"path": "/", "port": 8080}},
)


def _rich(executor: str) -> Task:
    return task(
        step(
            "build",
            command=["sh", "-c", "make"],
            env=[{"name": "A", "value": "1"}],
            resources={"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
            volumeMounts=[{"name": "cache", "mountPath": "/cache"}],
        ),
        step("test", script="echo hi", args=["x"], resources={"limits": {"cpu": "2"}}),
        step("ship", command=["true"], workingDir="/workspace"),
        executor=executor,
        activeDeadlineSeconds=600,
        podTemplate={"volumes": [{"name": "cache", "emptyDir": {}}], "nodeSelector": {"a": "b"}},
    )


def golden_cases() -> dict[str, dict[str, Any]]:
    """Every case of :data:`GOLDEN`, rendered by this checkout's taskflow."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(SEED.glob("*.yaml")):
        out[f"{path.stem}/kubelet"] = render_pod(load_task_yaml(path.read_text()), KUBELET)
    for executor in ("kubelet", "agent"):
        out[f"rich/{executor}"] = render_pod(_rich(executor), AGENT)
    return out


def test_a_task_without_sidecars_renders_as_before() -> None:
    expected = json.loads(GOLDEN.read_text())
    got = golden_cases()
    assert sorted(got) == sorted(expected)
    for name, pod in got.items():
        assert json.dumps(pod, sort_keys=True) == json.dumps(expected[name], sort_keys=True), name
        # key order too: the manifest is POSTed as rendered
        assert json.dumps(pod) == json.dumps(expected[name]), name


def _names(containers: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in containers]


@pytest.mark.parametrize(
    ("executor", "init", "regular"),
    [
        ("kubelet", ["web", "db", "a", "b"], ["c"]),
        ("agent", [INSTALL_CONTAINER, "web", "db"], ["a", "b", "c"]),
    ],
)
def test_sidecars_start_before_the_steps(
    executor: str, init: list[str], regular: list[str]
) -> None:
    t = task(
        step("a", command=["x"]),
        step("b", command=["x"]),
        step("c", command=["x"]),
        sidecars=[HTTPD, sidecar("db", command=["db"])],
        executor=executor,
    )
    spec = render_pod(t, AGENT)["spec"]
    assert _names(spec["initContainers"]) == init
    assert _names(spec["containers"]) == regular
    for c in spec["initContainers"]:
        expected = "Always" if c["name"] in ("web", "db") else None
        assert c.get("restartPolicy") == expected, c["name"]
    # the pod itself never restarts anything else
    assert spec["restartPolicy"] == "Never"


@pytest.mark.parametrize("executor", ["kubelet", "agent"])
def test_a_sidecar_is_rendered_verbatim(executor: str) -> None:
    fields: dict[str, Any] = {
        "command": ["httpd"],
        "args": ["-f"],
        "workingDir": "/srv",
        "env": [{"name": "A", "value": "$(steps.x.results.y)"}],
        "envFrom": [{"configMapRef": {"name": "cm"}}],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
        "startupProbe": {"tcpSocket": {"port": 8080}},
        "livenessProbe": {"exec": {"command": ["true"]}},
        "resources": {"requests": {"cpu": "100m"}},
        "volumeMounts": [{"name": "taskflow-workspace", "mountPath": "/workspace"}],
        "securityContext": {"runAsNonRoot": True},
        "imagePullPolicy": "IfNotPresent",
    }
    t = task(step("a", command=["x"]), sidecars=[sidecar("web", **fields)], executor=executor)
    (web,) = [c for c in render_pod(t, AGENT)["spec"]["initContainers"] if c["name"] == "web"]
    assert web == {
        "name": "web",
        "image": "busybox:1.36",
        **fields,
        "restartPolicy": "Always",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


@pytest.mark.parametrize("executor", ["kubelet", "agent"])
def test_a_sidecar_gets_only_the_mounts_it_lists(executor: str) -> None:
    t = task(step("a", command=["x"]), sidecars=[sidecar("web")], executor=executor)
    (web,) = [c for c in render_pod(t, AGENT)["spec"]["initContainers"] if c["name"] == "web"]
    assert "volumeMounts" not in web
    assert web["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_agents_message_budget_counts_the_sidecars() -> None:
    # 3 steps + install + 2 sidecars + 1 ephemeral: 12288 // 7
    assert agent_message_limit(3, 2) == 1755
    assert agent_message_limit(3) == agent_message_limit(3, 0) == 2457
    t = task(
        *(step(n, command=["x"]) for n in "abc"),
        sidecars=[sidecar("d"), sidecar("e")],
        executor="agent",
    )
    for c in render_pod(t, AGENT)["spec"]["containers"]:
        head = c["command"][: c["command"].index("--")]
        assert head[head.index("--message-limit") + 1] == "1755"


def _res(**kw: Any) -> dict[str, Any]:
    return {"resources": kw}


@pytest.mark.parametrize(
    ("steps", "sidecars", "expected"),
    [
        # no sidecar resources: the largest step's, as written
        (
            [_res(requests={"cpu": "500m"}), _res(requests={"cpu": "2"})],
            [{}],
            {"cpu": "2"},
        ),
        # millicores add up; a whole sum is written whole
        ([_res(requests={"cpu": "500m"})], [_res(requests={"cpu": "250m"})], {"cpu": "750m"}),
        ([_res(requests={"cpu": "1500m"})], [_res(requests={"cpu": "500m"})], {"cpu": "2"}),
        ([_res(requests={"cpu": "1"})], [_res(requests={"cpu": "0.1"})] * 2, {"cpu": "1200m"}),
        # memory in binary units stays in them; mixed units are summed in bytes
        (
            [_res(requests={"memory": "1Gi"})],
            [_res(requests={"memory": "512Mi"})],
            {"memory": "1536Mi"},
        ),
        (
            [_res(requests={"memory": "1G"})],
            [_res(requests={"memory": "1Mi"})],
            {"memory": "1001048576"},
        ),
        # a sidecar's missing request defaults to its limit
        (
            [_res(requests={"memory": "64Mi"})],
            [_res(limits={"memory": "64Mi"})],
            {"memory": "128Mi"},
        ),
        # steps without requests: the sidecars' alone
        (
            [{}, {}],
            [_res(requests={"cpu": "100m"}), _res(requests={"cpu": "200m"})],
            {"cpu": "300m"},
        ),
        # the largest step, not the sum of steps
        (
            [
                _res(requests={"cpu": "1", "memory": "1Gi"}),
                _res(requests={"cpu": "3", "memory": "2Gi"}),
            ],
            [_res(requests={"cpu": "1", "memory": "1Gi"})],
            {"cpu": "4", "memory": "3Gi"},
        ),
    ],
)
def test_pod_level_requests_add_the_sidecars(
    steps: list[dict[str, Any]], sidecars: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    t = task(
        *(step(f"s{i}", command=["x"], **r) for i, r in enumerate(steps)),
        sidecars=[sidecar(f"c{i}", **r) for i, r in enumerate(sidecars)],
    )
    got = pod_resources(list(t.spec.steps), list(t.spec.sidecars))
    assert got == {"requests": expected}


@pytest.mark.parametrize(
    ("steps", "sidecars", "limits"),
    [
        # every step and every sidecar sets one: the largest step's plus the sidecars'
        (
            [_res(limits={"memory": "1Gi"}), _res(limits={"memory": "2Gi"})],
            [_res(limits={"memory": "256Mi"})],
            {"memory": "2304Mi"},
        ),
        # a sidecar without one: no pod-level limit (it would cap the sidecar)
        ([_res(limits={"cpu": "1"})], [_res(limits={"cpu": "1"}), {}], None),
        # a step without one: none either
        ([_res(limits={"cpu": "1"}), {}], [_res(limits={"cpu": "1"})], None),
    ],
)
def test_pod_level_limits_only_when_every_container_has_one(
    steps: list[dict[str, Any]], sidecars: list[dict[str, Any]], limits: dict[str, str] | None
) -> None:
    t = task(
        *(step(f"s{i}", command=["x"], **r) for i, r in enumerate(steps)),
        sidecars=[sidecar(f"c{i}", **r) for i, r in enumerate(sidecars)],
    )
    got = pod_resources(list(t.spec.steps), list(t.spec.sidecars)) or {}
    assert got.get("limits") == limits


def test_the_agent_pod_carries_them_and_the_sidecars_keep_their_own() -> None:
    t = task(
        step("a", command=["x"], **_res(requests={"cpu": "1"}, limits={"cpu": "1"})),
        sidecars=[sidecar("web", **_res(requests={"cpu": "200m"}, limits={"cpu": "500m"}))],
        executor="agent",
    )
    spec = render_pod(t, AGENT)["spec"]
    assert spec["resources"] == {"requests": {"cpu": "1200m"}, "limits": {"cpu": "1500m"}}
    web = spec["initContainers"][1]
    assert web["resources"] == {"requests": {"cpu": "200m"}, "limits": {"cpu": "500m"}}


def test_the_kubelet_pod_has_no_pod_level_resources() -> None:
    # the kubelet sizes native sidecars itself: their sum plus the largest init/regular one
    t = task(
        step("a", command=["x"], **_res(requests={"cpu": "1"})),
        sidecars=[sidecar("web", **_res(requests={"cpu": "200m"}))],
        executor="kubelet",
    )
    spec = render_pod(t, KUBELET)["spec"]
    assert "resources" not in spec
    assert spec["initContainers"][0]["resources"] == {"requests": {"cpu": "200m"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("2", "2"),
        ("1500m", "1500m"),
        ("0.0001", "1m"),  # rounded up: a request is never made smaller
        ("1024", "1Ki"),
        ("1536Mi", "1536Mi"),
        ("2Gi", "2Gi"),
        ("1G", "1000000000"),
    ],
)
def test_format_quantity(text: str, expected: str) -> None:
    assert format_quantity(quantity(text)) == expected
    assert quantity(expected) >= quantity(text)


def test_the_readmes_example_renders() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = [b for b in readme.split("```yaml\n")[1:] if b.startswith("spec:\n  sidecars:")]
    spec = yaml.safe_load(block.split("```")[0])["spec"]
    t = task(*spec["steps"], sidecars=spec["sidecars"])
    assert spec_problem(t) is None
    for settings in (AGENT, KUBELET):
        pod = render_pod(t, settings)
        (web,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "web"]
        assert web["restartPolicy"] == "Always"
        assert web["startupProbe"] == {"tcpSocket": {"port": 8080}, "periodSeconds": 1}


if __name__ == "__main__":  # pragma: no cover - writes the golden file
    GOLDEN.write_text(json.dumps(golden_cases(), indent=1, ensure_ascii=False) + "\n")
