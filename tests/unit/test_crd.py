"""api.schema / api.crd: the generated CRD is structural, complete and deterministic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from taskflow.api import PodTemplate, SidecarStatus, Step, TaskStatus
from taskflow.api.crd import CRD_NAME, build_crd, crd_yaml, openapi_schema
from taskflow.api.schema import (
    QUANTITY,
    QUANTITY_FIELDS,
    SchemaError,
    encode,
    k8s_description,
    k8s_required,
    k8s_schema,
    struct_schema,
    structural_errors,
    walk,
)
from taskflow.api.task import (
    AGENT_FIELDS_MESSAGE,
    CANCEL_FINAL_MESSAGE,
    MAX_SIDECARS,
    RESERVED_MOUNT_MESSAGE,
    RESERVED_PATH_MESSAGE,
    RETRY_FIELDS_MESSAGE,
    SIDECAR_RESERVED_MOUNT_MESSAGE,
    SIDECAR_RESERVED_NAME_MESSAGE,
    SIDECAR_STEP_NAME_MESSAGE,
    SPEC_IMMUTABLE_MESSAGE,
    Sidecar,
)
from taskflow.api.task_status import FINAL_STATUS_MESSAGE

ROOT = Path(__file__).resolve().parents[2]
SWAGGER = Path.home() / "go/pkg/mod/k8s.io/kubernetes@v1.34.4/api/openapi-spec/swagger.json"


def spec_schema() -> dict[str, Any]:
    out: dict[str, Any] = openapi_schema()["properties"]["spec"]
    return out


def step_schema() -> dict[str, Any]:
    out: dict[str, Any] = spec_schema()["properties"]["steps"]["items"]
    return out


def test_crd_identity() -> None:
    crd = build_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == CRD_NAME == "tasks.api.practice.com"
    spec = crd["spec"]
    assert spec["group"] == "api.practice.com"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Task",
        "listKind": "TaskList",
        "plural": "tasks",
        "singular": "task",
        "shortNames": ["ta"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    cols = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"].upper(), c["jsonPath"]) for c in cols] == [
        ("STATUS", ".status.status"),
        ("STEP", ".status.progress"),
        ("START", ".status.startAt"),
        ("DURATION", ".status.duration"),
        ("AGE", ".metadata.creationTimestamp"),
        ("REASON", '.status.conditions[?(@.type=="Succeeded")].reason'),
        ("POD", ".status.podName"),
        ("ATTEMPT", ".status.attempt"),
    ]
    assert cols[4]["type"] == "date"
    # the seed's five columns by default; the rest only with -o wide
    assert [c.get("priority", 0) for c in cols] == [0, 0, 0, 0, 0, 1, 1, 1]


def test_schema_is_structural() -> None:
    schema = openapi_schema()
    assert structural_errors(schema) == []
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]
    # no $ref anywhere, every node typed (or int-or-string / preserve-unknown-fields)
    text = json.dumps(schema)
    assert "$ref" not in text
    for path, node in walk(schema):
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), path


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"properties": {}}, "no type"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "$ref"),
        ({"type": "array"}, "array without items"),
        (
            {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "both properties and additionalProperties",
        ),
        ({"type": "string", "anyOf": [{"type": "string"}]}, "type inside a value validation"),
        ({"type": "string", "anyOf": [{"description": "x"}]}, "description inside"),
    ],
)
def test_structural_checker_catches(schema: dict[str, Any], problem: str) -> None:
    assert any(problem in e for e in structural_errors(schema))


def test_crd_yaml_is_deterministic_across_processes() -> None:
    code = "from taskflow.api.crd import crd_yaml; import sys; sys.stdout.write(crd_yaml())"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout
        for seed in (0, 1, 2)
    }
    assert runs == {crd_yaml()}


def test_crd_yaml_round_trips_and_ends_with_newline() -> None:
    text = crd_yaml()
    assert text.endswith("\n")
    assert yaml.safe_load(text) == build_crd()


def test_build_crd_returns_a_fresh_copy() -> None:
    a = build_crd()
    a["spec"]["group"] = "x"
    assert build_crd()["spec"]["group"] == "api.practice.com"


def test_size_fits_client_side_apply() -> None:
    # `kubectl apply` (client side) keeps the whole object in an annotation of at most
    # 256 KiB; the API server's own limit on an object is ~1.5 MiB.
    size = len(json.dumps(build_crd(), separators=(",", ":")))
    assert size < 256 * 1024 - 4096, size


def test_every_step_field_is_in_the_schema() -> None:
    props = step_schema()["properties"]
    wire = {f.encode_name for f in msgspec.structs.fields(Step)}
    assert wire == set(props)
    assert set(step_schema()["required"]) == {"name", "image"}
    for name, node in props.items():
        assert node.get("description"), name


def test_every_pod_template_and_status_field_is_in_the_schema() -> None:
    tpl = spec_schema()["properties"]["podTemplate"]["properties"]
    assert {f.encode_name for f in msgspec.structs.fields(PodTemplate)} == set(tpl)
    assert set(tpl) == {
        "serviceAccountName",
        "nodeSelector",
        "tolerations",
        "affinity",
        "imagePullSecrets",
        "volumes",
        "securityContext",
        "priorityClassName",
        "runtimeClassName",
        "terminationGracePeriodSeconds",
    }
    status = openapi_schema()["properties"]["status"]["properties"]
    assert {f.encode_name for f in msgspec.structs.fields(TaskStatus)} == set(status)
    assert set(status) >= {
        "status",
        "startAt",
        "duration",
        "startTime",
        "completionTime",
        "podName",
        "progress",
        "steps",
        "conditions",
        "observedGeneration",
        "attempt",
        "attempts",
        "sidecars",
    }
    assert status["startTime"]["format"] == "date-time"
    assert status["status"]["enum"] == [
        "Pending",
        "Running",
        "Successful",
        "Failure",
        "Cancelled",
    ]
    step = status["steps"]["items"]
    assert step["properties"]["state"]["enum"] == ["Waiting", "Running", "Terminated", "NotRun"]
    assert set(step["properties"]) == {
        "name",
        "state",
        "exitCode",
        "reason",
        "message",
        "startedAt",
        "finishedAt",
        "results",
        "attempts",
        "retriedExitCodes",
    }
    assert set(step["properties"]["results"]["items"]["properties"]) == {"name", "value"}


def test_step_excludes_what_init_containers_reject() -> None:
    props = step_schema()["properties"]
    for name in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "restartPolicy"):
        assert name not in props


def test_real_container_types_are_expanded() -> None:
    props = step_schema()["properties"]
    env = props["env"]["items"]
    assert env["required"] == ["name"]
    assert set(env["properties"]) == {"name", "value", "valueFrom"}
    secret_ref = env["properties"]["valueFrom"]["properties"]["secretKeyRef"]
    assert secret_ref["type"] == "object"
    assert "key" in secret_ref["required"]
    mounts = props["volumeMounts"]["items"]
    assert set(mounts["required"]) == {"name", "mountPath"}
    assert props["imagePullPolicy"]["enum"] == ["Always", "IfNotPresent", "Never"]
    caps = props["securityContext"]["properties"]["capabilities"]["properties"]["drop"]
    assert caps == {
        "type": "array",
        "items": {"type": "string"},
        "description": caps["description"],
    }


def test_quantities() -> None:
    res = step_schema()["properties"]["resources"]["properties"]
    for key in ("limits", "requests"):
        assert res[key]["type"] == "object"
        assert res[key]["additionalProperties"] == QUANTITY
    assert QUANTITY["x-kubernetes-int-or-string"] is True
    assert QUANTITY["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    vol = spec_schema()["properties"]["podTemplate"]["properties"]["volumes"]["items"]
    size_limit = vol["properties"]["emptyDir"]["properties"]["sizeLimit"]
    assert {k: v for k, v in size_limit.items() if k != "description"} == QUANTITY


def test_int_or_string() -> None:
    s = k8s_schema("V1HTTPGetAction")
    port = s["properties"]["port"]
    assert port["x-kubernetes-int-or-string"] is True
    assert "type" not in port
    assert s["required"] == ["port"]


@pytest.mark.skipif(not SWAGGER.is_file(), reason="no Kubernetes OpenAPI document on this host")
def test_quantity_table_matches_kubernetes_openapi() -> None:
    defs = json.loads(SWAGGER.read_text())["definitions"]
    found = set()
    for name, d in defs.items():
        if not name.startswith("io.k8s.api.core.v1."):
            continue
        for prop, sub in d.get("properties", {}).items():
            if "resource.Quantity" in json.dumps(sub):
                found.add(("V1" + name.rsplit(".", 1)[1], prop))
    reachable = {
        (m, f)
        for m, f in found
        if m
        in {
            "V1ResourceRequirements",
            "V1VolumeResourceRequirements",
            "V1EmptyDirVolumeSource",
            "V1ResourceFieldSelector",
            "V1PodSpec",
        }
    }
    assert reachable == {x for x in QUANTITY_FIELDS if x in found}
    # and nothing reachable from our types was missed
    text = json.dumps(openapi_schema())
    assert text.count('"x-kubernetes-int-or-string": true') >= 5


def test_k8s_metadata_helpers() -> None:
    assert k8s_required("V1Volume") == ("name",)
    assert set(k8s_required("V1KeyToPath")) == {"key", "path"}
    assert "environment variable" in (k8s_description("V1EnvVar", "name") or "")
    assert k8s_description("V1EnvVar", "nope") is None
    with pytest.raises(SchemaError):
        k8s_schema("V1DoesNotExist")


def test_k8s_recursion_is_cut_off() -> None:
    s = k8s_schema("V1JSONSchemaProps")
    items = s["properties"]["properties"]["additionalProperties"]
    assert items == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert structural_errors(s) == []


def test_cel_rules_have_messages() -> None:
    rules = [
        (path, r)
        for path, node in walk(openapi_schema())
        for r in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 7
    for path, r in rules:
        assert r["rule"], path
        assert r["message"], path
    by_message: dict[str, set[str]] = {}
    for path, r in rules:
        by_message.setdefault(r["message"], set()).add(path)
    assert by_message[SPEC_IMMUTABLE_MESSAGE] == {".spec"}
    assert by_message[CANCEL_FINAL_MESSAGE] == {".spec"}
    assert by_message[FINAL_STATUS_MESSAGE] == {".status"}
    assert ".spec.timeout" in by_message["must be a duration such as 30s, 10m or 1h30m"]
    assert by_message["step names must be unique"] == {".spec.steps"}
    assert by_message["a step has either script or command, not both"] == {".spec.steps[]"}
    assert by_message["image must not start or end with whitespace"] == {
        ".spec.steps[].image",
        ".spec.sidecars[].image",
    }
    # one rule for the mounts of steps and sidecars alike
    assert by_message[RESERVED_MOUNT_MESSAGE] == {".spec.steps[]"}
    assert by_message[SIDECAR_RESERVED_MOUNT_MESSAGE] == {".spec.sidecars[]"}
    assert by_message[RESERVED_PATH_MESSAGE] == {".spec.steps[]", ".spec.sidecars[]"}
    assert by_message["sidecar names must be unique"] == {".spec.sidecars"}
    assert by_message[SIDECAR_STEP_NAME_MESSAGE] == {".spec"}
    assert by_message[SIDECAR_RESERVED_NAME_MESSAGE] == {".spec.sidecars[].name"}
    # named in the message: the step or sidecar and its mount (messageExpression)
    exprs = {(path, r["message"]): r.get("messageExpression", "") for path, r in rules}
    assert "self.name" in exprs[".spec.steps[]", RESERVED_MOUNT_MESSAGE]
    assert ".mountPath" in exprs[".spec.steps[]", RESERVED_PATH_MESSAGE]
    assert exprs[".spec.steps[]", RESERVED_PATH_MESSAGE].startswith("'step ' + ")
    assert exprs[".spec.sidecars[]", RESERVED_PATH_MESSAGE].startswith("'sidecar ' + ")
    assert exprs[".spec.sidecars[]", SIDECAR_RESERVED_MOUNT_MESSAGE].startswith("'sidecar ' + ")
    assert "c.name" in exprs[".spec", SIDECAR_STEP_NAME_MESSAGE]


def _strings_close(cel: str) -> bool:
    """Every CEL string literal in ``cel`` ends (an apostrophe inside '...' would end it
    early and leave one open at the end, which the API server refuses to compile)."""
    quote: str | None = None
    escaped = False
    for ch in cel:
        if quote is None:
            if ch in "'\"":
                quote = ch
        elif escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == quote:
            quote = None
    return quote is None


@pytest.mark.parametrize(
    ("cel", "closes"),
    [("'a' + \"b's\"", True), ("'a\\'s'", True), ("'taskflow's own'", False)],
)
def test_strings_close(cel: str, closes: bool) -> None:
    assert _strings_close(cel) is closes


def test_cel_string_literals_close() -> None:
    for path, node in walk(openapi_schema()):
        for r in node.get("x-kubernetes-validations", []):
            for key in ("rule", "messageExpression"):
                assert _strings_close(r.get(key, "")), (path, key, r.get(key))


def _validations(node: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = node.get("x-kubernetes-validations", [])
    return out


def test_sidecar_mounts_follow_the_steps_rule() -> None:
    steps = _validations(step_schema())
    sidecars = _validations(spec_schema()["properties"]["sidecars"]["items"])
    mounts = [r for r in steps if "volumeMounts" in r["rule"]]
    assert len(mounts) == 2
    assert [r["rule"] for r in sidecars] == [r["rule"] for r in mounts]
    for step_rule, sidecar_rule in zip(mounts, sidecars, strict=True):
        assert sidecar_rule["messageExpression"] == (
            step_rule["messageExpression"]
            .replace("'step '", "'sidecar '")
            .replace("a step may", "a sidecar may")
        )


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        # each rule: what it reads, so that the API server's refusal names the right thing
        ("self.matches(", "sidecar name must be a DNS label"),
        ("startsWith('taskflow-')", SIDECAR_RESERVED_NAME_MESSAGE),
    ],
)
def test_sidecar_name_rules(fragment: str, expected: str) -> None:
    name = spec_schema()["properties"]["sidecars"]["items"]["properties"]["name"]
    (rule,) = [r for r in _validations(name) if fragment in r["rule"]]
    assert rule["message"].startswith(expected)
    assert "self" in rule["messageExpression"]
    assert name["maxLength"] == 63


def test_every_sidecar_field_is_in_the_schema() -> None:
    sidecars = spec_schema()["properties"]["sidecars"]
    assert sidecars["maxItems"] == MAX_SIDECARS == 8
    props = sidecars["items"]["properties"]
    assert (
        {f.encode_name for f in msgspec.structs.fields(Sidecar)}
        == set(props)
        == {
            "name",
            "image",
            "command",
            "args",
            "workingDir",
            "env",
            "envFrom",
            "ports",
            "readinessProbe",
            "startupProbe",
            "livenessProbe",
            "resources",
            "volumeMounts",
            "securityContext",
            "imagePullPolicy",
        }
    )
    assert set(sidecars["items"]["required"]) == {"name", "image"}
    for name, node in props.items():
        assert node.get("description"), name
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert {"httpGet", "exec", "tcpSocket", "periodSeconds"} <= set(props[probe]["properties"])
    assert props["ports"]["items"]["required"] == ["containerPort"]
    # restartPolicy is taskflow's (Always): the user does not choose it
    assert "restartPolicy" not in props
    status = openapi_schema()["properties"]["status"]["properties"]["sidecars"]["items"]
    assert {f.encode_name for f in msgspec.structs.fields(SidecarStatus)} == set(
        status["properties"]
    )
    assert status["properties"]["state"]["enum"] == ["Waiting", "Running", "Terminated"]


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        ("retries", {"type": "integer", "minimum": 0, "maximum": 10}),
        ("retryDelay", {"type": "string", "maxLength": 64}),
    ],
)
def test_step_retry_fields(field: str, schema: dict[str, Any]) -> None:
    node = step_schema()["properties"][field]
    assert {k: node[k] for k in schema} == schema
    assert node["description"].startswith("executor agent: ")
    if field == "retryDelay":  # the same Go duration rule as timeout
        assert (
            node["x-kubernetes-validations"]
            == step_schema()["properties"]["timeout"]["x-kubernetes-validations"]
        )


def test_retries_are_refused_under_the_kubelet() -> None:
    rules = {r["message"]: r["rule"] for r in spec_schema()["x-kubernetes-validations"]}
    rule = rules[RETRY_FIELDS_MESSAGE]
    assert rule.startswith("!has(self.executor) || self.executor != 'kubelet' || ")
    assert "(!has(s.retries) || s.retries == 0) && !has(s.retryDelay)" in rule
    assert "retries" not in rules[AGENT_FIELDS_MESSAGE]  # its message names its own fields


def test_limits_bound_cel_cost() -> None:
    steps = spec_schema()["properties"]["steps"]
    assert steps["minItems"] == 1
    assert steps["maxItems"] == 64
    props = steps["items"]["properties"]
    assert props["name"]["maxLength"] == 63
    assert props["script"]["maxLength"] == 60_000
    assert props["volumeMounts"]["maxItems"] == 64
    assert props["volumeMounts"]["items"]["properties"]["mountPath"]["maxLength"] == 4096
    vols = spec_schema()["properties"]["podTemplate"]["properties"]["volumes"]
    assert vols["maxItems"] == 64
    assert vols["items"]["properties"]["name"]["maxLength"] == 63


def test_struct_schema_rejects_non_structural_types() -> None:
    class Bad(msgspec.Struct):
        x: int | str

    with pytest.raises(SchemaError):
        struct_schema(Bad)


def test_encode_is_canonical() -> None:
    assert encode({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'


def test_chart_copy_is_identical() -> None:
    copies = sorted((ROOT / "charts").glob("*/crds/*.yaml"))
    assert copies, "the chart has no crds/ copy"
    for path in copies:
        if CRD_NAME in path.read_text():
            assert path.read_text() == crd_yaml(), f"{path} is stale: run `taskflow crd`"
