"""render.render_pod / pod_name: table-driven, no cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from taskflow import render
from taskflow.api import Step, Task, load_task_yaml
from taskflow.api.validate import spec_problem
from taskflow.labels import (
    ATTEMPT_LABEL,
    MANAGED_BY_LABEL,
    TASK_NAME_LABEL,
    TASK_UID_LABEL,
    script_annotation,
)
from taskflow.naming import label_value, pod_name
from taskflow.render import RenderError, normalize_script
from taskflow.settings import Settings
from tests.unit.builders import SETTINGS, step, task


def render_pod(task: Task, settings: Settings = SETTINGS, attempt: int = 1) -> dict[str, Any]:
    """These tables are the kubelet executor's (the operator's default is the agent:
    test_render_agent.py)."""
    return render.render_pod(task, settings, attempt)


SEED = Path(__file__).parent.parent / "data" / "seed"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def by_name(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in containers(pod)}


def mounts(c: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["name"], m["mountPath"]) for m in c.get("volumeMounts", [])]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_name", "expected"),
    [
        ("demo", "demo-pod"),
        ("a", "a-pod"),
        ("x" * 59, "x" * 59 + "-pod"),
    ],
)
def test_pod_name_short(task_name: str, expected: str) -> None:
    assert pod_name(task_name) == expected


@pytest.mark.parametrize(
    "task_name",
    [
        "x" * 60,
        "a" * 63,
        "b" * 253,
        "my.dotted.name." + "c" * 100,
        "a-" * 40 + "z",
        "a." * 40 + "z",
    ],
)
def test_pod_name_long_is_hashed_valid_and_stable(task_name: str) -> None:
    name = pod_name(task_name)
    assert 60 <= len(name) <= 63
    assert name.endswith("-pod")
    assert DNS_SUBDOMAIN.match(name), name
    assert name == pod_name(task_name)
    assert name != pod_name(task_name + "x")


def test_long_names_sharing_a_prefix_get_distinct_pods() -> None:
    a, b = "p" * 70 + "a", "p" * 70 + "b"
    assert pod_name(a) != pod_name(b)
    assert label_value(a) != label_value(b)


@pytest.mark.parametrize("value", ["demo", "x" * 63, "x" * 64, "a.b-" * 30 + "c", "q" * 253])
def test_label_value_fits(value: str) -> None:
    v = label_value(value)
    assert len(v) <= 63
    assert LABEL_VALUE.match(v), v
    assert (v == value) == (len(value) <= 63)


# --- pod shape ---------------------------------------------------------------------------------


def test_metadata_labels_owner() -> None:
    t = task(step("a"), name="demo", uid="u-1", namespace="ns1")
    pod = render_pod(t)
    assert pod["apiVersion"] == "v1"
    assert pod["kind"] == "Pod"
    meta = pod["metadata"]
    assert meta["name"] == "demo-pod"
    assert meta["namespace"] == "ns1"
    assert meta["labels"] == {
        MANAGED_BY_LABEL: "taskflow",
        TASK_NAME_LABEL: "demo",
        TASK_UID_LABEL: "u-1",
        ATTEMPT_LABEL: "1",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "api.practice.com/v1alpha1",
            "kind": "Task",
            "name": "demo",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "annotations" not in meta
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["a"]


@pytest.mark.parametrize(
    "names",
    [
        ["only"],
        ["first", "second"],
        ["zeta", "alpha", "mid"],  # spec order is not alphabetical order
        ["step10", "step2", "step1"],
        [f"s{i}" for i in range(12)],  # more than ten steps
        [f"s{i}" for i in range(64)],
        ["b", "a", "c", "aa", "a-1"],
    ],
)
def test_steps_are_init_containers_in_spec_order_last_is_main(names: list[str]) -> None:
    pod = render_pod(task(*(step(n) for n in names)))
    assert [c["name"] for c in pod["spec"].get("initContainers", [])] == names[:-1]
    assert [c["name"] for c in pod["spec"]["containers"]] == names[-1:]


def test_step_fields_are_passed_verbatim() -> None:
    s = step(
        "build",
        image="golang:1.22",
        command=["go"],
        args=["build", "-o", "/workspace/app", "./..."],
        workingDir="/src",
        env=[
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        envFrom=[{"configMapRef": {"name": "cm"}}],
        resources={"limits": {"cpu": 2, "memory": "1Gi"}, "requests": {"cpu": "500m"}},
        imagePullPolicy="IfNotPresent",
        securityContext={"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
        volumeDevices=[{"name": "blk", "devicePath": "/dev/xvda"}],
        stdin=False,
        tty=False,
    )
    c = render_pod(task(s))["spec"]["containers"][0]
    for key, value in s.items():
        assert c[key] == value, key
    assert set(c) == {*s, "volumeMounts"}


def test_args_starting_with_dash_and_spaces_are_untouched() -> None:
    args = ["--flag", "-x", "a b  c", "", "$(VAR)", "'quoted'"]
    c = render_pod(task(step("a", command=["echo"], args=args)))["spec"]["containers"][0]
    assert c["command"] == ["echo"]
    assert c["args"] == args


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"args": ["10"]},
        {"args": ["echo", "step test2"]},
    ],
)
def test_commandless_steps_keep_image_entrypoint(fields: dict[str, Any]) -> None:
    c = render_pod(task(step("a"), step("b", **fields)))["spec"]["containers"][0]
    assert "command" not in c
    assert c.get("args") == fields.get("args")


def test_termination_message_policy_defaults_to_logs_on_error() -> None:
    pod = render_pod(task(step("a"), step("b", terminationMessagePolicy="File")))
    assert by_name(pod)["a"]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert by_name(pod)["b"]["terminationMessagePolicy"] == "File"


def test_resources_are_not_summed() -> None:
    res = [{"requests": {"cpu": "1"}}, {"requests": {"cpu": "2"}}, {"limits": {"memory": "1Gi"}}]
    pod = render_pod(task(*(step(f"s{i}", resources=r) for i, r in enumerate(res))))
    assert [c["resources"] for c in containers(pod)] == res
    assert "resources" not in pod["spec"]
    assert "overhead" not in pod["spec"]


# --- scripts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo hi\n", "#!/bin/sh\necho hi\n"),
        ("echo hi", "#!/bin/sh\necho hi"),
        ("#!/bin/bash\nset -e\necho hi\n", "#!/bin/bash\nset -e\necho hi\n"),
        ("#!/usr/bin/env python3\nprint(1)\n", "#!/usr/bin/env python3\nprint(1)\n"),
        ("\n\n#!/bin/bash\necho x\n", "#!/bin/bash\necho x\n"),
        ("  #!/bin/sh\necho x", "#!/bin/sh\necho x"),
        ("#!/bin/bash\r\necho x\r\n", "#!/bin/bash\necho x\n"),
        ("", "#!/bin/sh\n"),
        ("# comment, not a shebang\necho x", "#!/bin/sh\n# comment, not a shebang\necho x"),
        ("echo 你好\n", "#!/bin/sh\necho 你好\n"),
    ],
)
def test_normalize_script(script: str, expected: str) -> None:
    assert normalize_script(script) == expected


@pytest.mark.parametrize("shebang", [True, False])
def test_script_step(shebang: bool) -> None:
    body = "echo step3\necho done\n"
    script = ("#!/bin/bash\n" + body) if shebang else body
    t = task(
        step("step1", command=["sh", "-c"], args=["echo 1"]),
        step("step3", script=script, args=["x", "--y"]),
        step("last"),
    )
    pod = render_pod(t)
    key = script_annotation("step3")
    assert key == "script.api.practice.com/step3"
    ann = pod["metadata"]["annotations"]
    assert ann == {key: ("#!/bin/bash\n" if shebang else "#!/bin/sh\n") + body}
    c = by_name(pod)["step3"]
    assert c["command"] == ["/taskflow/scripts/step3"]
    assert c["args"] == ["x", "--y"]
    assert "script" not in c
    assert ("taskflow-scripts", "/taskflow/scripts") in mounts(c)
    assert {"name": "taskflow-scripts", "mountPath": "/taskflow/scripts", "readOnly": True} in c[
        "volumeMounts"
    ]
    # only script steps mount the scripts volume
    assert ("taskflow-scripts", "/taskflow/scripts") not in mounts(by_name(pod)["step1"])
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["taskflow-scripts"] == {
        "name": "taskflow-scripts",
        "downwardAPI": {
            "items": [
                {
                    "path": "step3",
                    "fieldRef": {
                        "apiVersion": "v1",
                        "fieldPath": "metadata.annotations['script.api.practice.com/step3']",
                    },
                    "mode": 0o755,
                }
            ]
        },
    }


def test_several_scripts_one_volume_item_each_in_spec_order() -> None:
    t = task(step("z", script="echo z"), step("b", script="echo b"), step("m", script="echo m"))
    pod = render_pod(t)
    vols = [v for v in pod["spec"]["volumes"] if v["name"] == "taskflow-scripts"]
    assert len(vols) == 1
    assert [i["path"] for i in vols[0]["downwardAPI"]["items"]] == ["z", "b", "m"]
    assert all(i["mode"] == 493 for i in vols[0]["downwardAPI"]["items"])
    assert sorted(pod["metadata"]["annotations"]) == sorted(
        script_annotation(n) for n in ("z", "b", "m")
    )


def test_no_script_no_scripts_volume() -> None:
    pod = render_pod(task(step("a"), step("b")))
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["taskflow-workspace"]


def test_script_annotation_key_is_valid_for_longest_step_name() -> None:
    name = "s" * 63
    key = script_annotation(name)
    prefix, _, rest = key.partition("/")
    assert DNS_SUBDOMAIN.match(prefix)
    assert len(rest) <= 63
    pod = render_pod(task(step(name, script="echo")))
    assert key in pod["metadata"]["annotations"]


# --- volumes and mounts ------------------------------------------------------------------------


def test_workspace_is_mounted_in_every_step() -> None:
    pod = render_pod(task(step("a"), step("b"), step("c")))
    assert {"name": "taskflow-workspace", "emptyDir": {}} in pod["spec"]["volumes"]
    for c in containers(pod):
        assert ("taskflow-workspace", "/workspace") in mounts(c)


@pytest.mark.parametrize("path", ["/workspace", "/workspace/"])
def test_step_mounting_workspace_itself_keeps_its_mount(path: str) -> None:
    own = {"name": "data", "mountPath": path}
    t = task(
        step("a", volumeMounts=[own]),
        step("b"),
        podTemplate={"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}}]},
    )
    pod = render_pod(t)
    assert by_name(pod)["a"]["volumeMounts"] == [own]
    assert ("taskflow-workspace", "/workspace") in mounts(by_name(pod)["b"])


def test_user_mounts_verbatim_and_first() -> None:
    user = [
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True, "subPath": "x"},
        {"name": "cache", "mountPath": "/cache", "mountPropagation": "None"},
    ]
    t = task(
        step("a", volumeMounts=user, script="ls"),
        podTemplate={
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
                {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            ]
        },
    )
    pod = render_pod(t)
    c = pod["spec"]["containers"][0]
    assert c["volumeMounts"][:2] == user
    assert mounts(c)[2:] == [
        ("taskflow-scripts", "/taskflow/scripts"),
        ("taskflow-workspace", "/workspace"),
    ]
    assert [v["name"] for v in pod["spec"]["volumes"]] == [
        "cfg",
        "cache",
        "taskflow-workspace",
        "taskflow-scripts",
    ]
    assert pod["spec"]["volumes"][1] == {
        "name": "cache",
        "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"},
    }


# --- pod template ------------------------------------------------------------------------------


def test_pod_template_fields() -> None:
    tpl = {
        "serviceAccountName": "runner",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}
                    ]
                }
            }
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
        "priorityClassName": "low",
        "runtimeClassName": "gvisor",
    }
    pod = render_pod(task(step("a"), podTemplate=tpl))
    for key, value in tpl.items():
        assert pod["spec"][key] == value, key


def test_active_deadline_seconds() -> None:
    assert (
        render_pod(task(step("a"), activeDeadlineSeconds=600))["spec"]["activeDeadlineSeconds"]
        == 600
    )
    assert "activeDeadlineSeconds" not in render_pod(task(step("a")))["spec"]


def test_render_is_deterministic_and_does_not_mutate_the_task() -> None:
    t = task(step("a", volumeMounts=[{"name": "v", "mountPath": "/v"}]), step("b", script="x"))
    before = repr(t)
    assert render_pod(t) == render_pod(t)
    assert repr(t) == before


# --- invalid input (normally rejected by the CRD schema) ---------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one step"),
        ([step("a"), step("a")], "unique (duplicated: a)"),
        ([step("a", script="x", command=["sh"])], "either script or command"),
    ],
)
def test_unrenderable(steps: list[dict[str, Any]], message: str) -> None:
    # built without decoding: msgspec itself already refuses an empty step list
    t = msgspec.convert(
        {"metadata": {"name": "x"}, "spec": {"steps": [{"name": "a", "image": "i"}]}}, Task
    )
    t.spec.steps = [msgspec.convert(s, Step) for s in steps]
    assert message in (spec_problem(t) or "")
    with pytest.raises(RenderError, match=re.escape(message)):
        render_pod(t)


def sidecar(name: str, image: str = "busybox:1.36", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


@pytest.mark.parametrize(
    ("sidecars", "message"),
    [
        ([sidecar("db"), sidecar("db")], "sidecar names must be unique (duplicated: db)"),
        (
            [sidecar("a")],
            'sidecar "a" has the name of a step: steps and sidecars are containers of one pod',
        ),
        (
            [sidecar("taskflow-install")],
            'sidecar name "taskflow-install" is reserved: names starting with taskflow- are '
            "taskflow's own containers",
        ),
        ([sidecar("taskflow-x")], 'sidecar name "taskflow-x" is reserved'),
        (
            [sidecar("db", volumeMounts=[{"name": "taskflow-bin", "mountPath": "/b"}])],
            "sidecar db: volumeMount taskflow-bin is taskflow's own volume",
        ),
    ],
)
@pytest.mark.parametrize("executor", ["agent", "kubelet"])
def test_unrenderable_sidecars(sidecars: list[dict[str, Any]], message: str, executor: str) -> None:
    t = task(step("a"), step("b"), sidecars=sidecars, executor=executor)
    assert message in (spec_problem(t) or "")
    with pytest.raises(RenderError, match=re.escape(message)):
        render_pod(t)


# --- the seed's examples -----------------------------------------------------------------------

SEED_FILES = sorted(p.name for p in SEED.glob("*.yaml"))


def test_seed_examples_are_present() -> None:
    assert SEED_FILES == [
        "task_customize_image_example.yaml",
        "task_error_example.yaml",
        "task_example.yaml",
        "task_script_example.yaml",
    ]


@pytest.mark.parametrize("fname", SEED_FILES)
def test_seed_examples_render(fname: str) -> None:
    t = load_task_yaml((SEED / fname).read_text())
    pod = render_pod(t)
    assert [c["name"] for c in containers(pod)] == [s.name for s in t.spec.steps]
    assert pod["metadata"]["name"] == f"{t.metadata.name}-pod"
    for s, c in zip(t.spec.steps, containers(pod), strict=True):
        assert c["image"] == s.image
        if s.script is None:
            assert c.get("command", []) == s.command
        assert c.get("args", []) == s.args


def test_seed_script_example() -> None:
    t = load_task_yaml((SEED / "task_script_example.yaml").read_text())
    pod = render_pod(t)
    c = by_name(pod)["step3"]
    assert c["command"] == ["/taskflow/scripts/step3"]
    assert pod["metadata"]["annotations"][script_annotation("step3")] == (
        '#!/bin/sh\necho  step4\necho  "step4-2"\n'
    )
    assert by_name(pod)["step4"]["args"] == ["100"]
    assert "command" not in by_name(pod)["step4"]


def test_seed_placeholder_image_still_renders() -> None:
    t = load_task_yaml((SEED / "task_customize_image_example.yaml").read_text())
    pod = render_pod(t)
    assert pod["spec"]["containers"][0]["image"] == "<填入自定义镜像>"
    assert pod["spec"]["containers"][0]["args"] == ["echo", "step test2"]
