"""taskflow.api: decoders, YAML loading, wire names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from taskflow.api import (
    DecodeError,
    Step,
    Task,
    TaskSpec,
    TaskStatus,
    decode_pod,
    decode_task,
    decode_task_status,
    load_task_yaml,
    to_dict,
)
from taskflow.api.meta import ObjectMeta
from taskflow.labels import MANAGED_BY_SELECTOR, script_annotation, task_uid_selector
from tests.unit.builders import task_dict

SEED = Path(__file__).parent.parent / "data" / "seed"


def test_labels() -> None:
    assert MANAGED_BY_SELECTOR == "app.kubernetes.io/managed-by=taskflow"
    assert task_uid_selector("u") == "api.practice.com/task-uid=u"
    assert script_annotation("s1") == "script.api.practice.com/s1"


def test_decode_task_wire_names() -> None:
    d = task_dict(
        {
            "name": "a",
            "image": "busybox",
            "workingDir": "/w",
            "envFrom": [{"secretRef": {"name": "s"}}],
            "volumeMounts": [{"name": "v", "mountPath": "/v"}],
            "imagePullPolicy": "Never",
            "unknownField": 1,  # pruned by the API server; ignored here
        },
        podTemplate={"serviceAccountName": "sa", "nodeSelector": {"a": "b"}},
        activeDeadlineSeconds=30,
    )
    t = decode_task(d)
    s = t.spec.steps[0]
    assert s.working_dir == "/w"
    assert s.env_from == [{"secretRef": {"name": "s"}}]
    assert s.volume_mounts == [{"name": "v", "mountPath": "/v"}]
    assert s.image_pull_policy == "Never"
    assert t.spec.pod_template is not None
    assert t.spec.pod_template.service_account_name == "sa"
    assert t.spec.active_deadline_seconds == 30
    assert t.metadata.creation_timestamp == datetime(2024, 1, 6, 22, 19, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"steps": [{"name": "a"}]}, "$.spec.steps[0]"),
        ({"steps": [{"image": "a"}]}, "$.spec.steps[0]"),
        ({"steps": [{"name": "a", "image": 3}]}, "$.spec.steps[0].image"),
        ({"steps": []}, "$.spec.steps"),
        ({"steps": [{"name": "a", "image": "i", "args": "x"}]}, "$.spec.steps[0].args"),
        ({"steps": [{"name": "a", "image": "i", "imagePullPolicy": "always"}]}, "imagePullPolicy"),
        ({}, "spec"),
    ],
)
def test_decode_errors_say_where(spec: dict[str, object], where: str) -> None:
    d = task_dict()
    d["spec"] = spec
    with pytest.raises(DecodeError, match=__import__("re").escape(where)):
        decode_task(d)


def test_decode_task_status_is_lenient() -> None:
    assert decode_task_status(None) is None
    assert decode_task_status({}) is None
    assert decode_task_status({"steps": "x"}) is None
    st = decode_task_status({"status": "", "startAt": "2024-01-06 22:19:24", "extra": 1})
    assert st == TaskStatus(status="", start_at="2024-01-06 22:19:24")
    assert st is not None
    assert not st.finished


def test_seed_status_words_decode() -> None:
    # the seed wrote an empty status while pending; such objects must still decode
    t = decode_task(task_dict({"name": "a", "image": "b"}, status={"status": ""}))
    assert t.status is not None
    assert t.status.status == ""


@pytest.mark.parametrize("path", sorted(SEED.glob("*.yaml")), ids=lambda p: p.name)
def test_load_seed_yaml(path: Path) -> None:
    t = load_task_yaml(path.read_text())
    assert t.api_version == "api.practice.com/v1alpha1"
    assert t.kind == "Task"
    assert t.spec.steps
    assert to_dict(t)["spec"]["steps"][0]["name"] == "step1"


def test_load_task_yaml_multi_document_and_json() -> None:
    text = "---\napiVersion: v1\nkind: ConfigMap\n---\n" + (SEED / "task_example.yaml").read_text()
    assert load_task_yaml(text).metadata.name == "example-taskflow"
    as_json = msgspec.json.encode(task_dict({"name": "a", "image": "b"}))
    assert load_task_yaml(as_json).spec.steps[0].name == "a"
    with pytest.raises(DecodeError, match="no Task"):
        load_task_yaml("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(DecodeError):
        load_task_yaml("")


def test_to_dict_keeps_api_version_and_kind() -> None:
    t = Task(metadata=ObjectMeta(name="x"), spec=TaskSpec(steps=[Step(name="a", image="b")]))
    assert to_dict(t) == {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": "x"},
        "spec": {"steps": [{"name": "a", "image": "b"}]},
    }
    assert decode_task(to_dict(t)) == t


def test_decode_pod_real_shape() -> None:
    p = decode_pod(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "x-pod",
                "namespace": "ns",
                "uid": "pu",
                "labels": {"api.practice.com/task-uid": "tu"},
                "ownerReferences": [
                    {
                        "apiVersion": "api.practice.com/v1alpha1",
                        "kind": "Task",
                        "name": "x",
                        "uid": "tu",
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "deletionTimestamp": "2024-01-06T22:19:24Z",
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
            },
            "spec": {
                "initContainers": [{"name": "a", "image": "i"}],
                "containers": [{"name": "b", "image": "i", "resources": {}}],
                "restartPolicy": "Never",
            },
            "status": {
                "phase": "Running",
                "startTime": "2024-01-06T22:19:20Z",
                "conditions": [{"type": "Ready", "status": "False", "reason": "x"}],
                "initContainerStatuses": [
                    {
                        "name": "a",
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": "2024-01-06T22:19:21Z",
                                "finishedAt": "2024-01-06T22:19:22Z",
                            }
                        },
                        "lastState": {},
                        "ready": True,
                        "restartCount": 0,
                        "image": "i",
                        "imageID": "sha",
                    }
                ],
                "containerStatuses": [
                    {"name": "b", "state": {"running": {"startedAt": "2024-01-06T22:19:23Z"}}}
                ],
            },
        }
    )
    assert p.metadata.owner_references[0].block_owner_deletion is True
    assert p.metadata.deletion_timestamp is not None
    assert [c.name for c in p.spec.init_containers] == ["a"]
    term = p.status.init_container_statuses[0].state.terminated
    assert term is not None
    assert term.exit_code == 0
    assert p.status.condition("Ready") is not None
    assert p.status.condition("Nope") is None


def test_decode_pod_error() -> None:
    with pytest.raises(DecodeError):
        decode_pod({"status": {"phase": 3}})
