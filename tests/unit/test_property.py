"""Property tests: any Task the schema accepts renders to a well-formed pod; statuses keep
their invariants for any kubelet observation."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskflow.api import decode_pod, decode_task
from taskflow.api.crd import openapi_schema
from taskflow.api.schema import Schema
from taskflow.naming import pod_name
from taskflow.oci import ImageCommand, Resolved
from taskflow.render import quantity, render_pod
from taskflow.settings import Settings
from taskflow.status import evaluate
from tests.unit.builders import SETTINGS, at, pod_dict, running, terminated, waiting
from tests.unit.strategies import IMAGES, task_dicts

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ANNOTATIONS_LIMIT = 256 * 1024

SCHEMA = openapi_schema()
#: the registry's answer for every image the strategies use (agent steps without command)
IMAGE_COMMANDS = {
    image: Resolved(platforms={"linux/amd64": ImageCommand(entrypoint=("/bin/sh",))})
    for image in IMAGES
}


def schema_errors(value: Any, schema: Schema, path: str = "$") -> list[str]:
    """A small OpenAPI v3 validator: the keywords the generated schema uses (CEL excluded)."""
    errs: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            return [f"{path}: not int-or-string"]
        if (
            isinstance(value, str)
            and "pattern" in schema
            and not re.search(schema["pattern"], value)
        ):
            errs.append(f"{path}: {value!r} does not match pattern")
        return errs
    typ = schema.get("type")
    ok: Callable[[Any], bool] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        None: lambda v: True,
    }[typ]
    if not ok(value):
        return [f"{path}: expected {typ}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} not in enum")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", 1 << 30) or len(value) < schema.get("minLength", 0):
            errs.append(f"{path}: bad length {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: pattern")
    low, high = schema.get("minimum", -(1 << 63)), schema.get("maximum", 1 << 63)
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        errs.append(f"{path}: out of range")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", 1 << 30) or len(value) < schema.get("minItems", 0):
            errs.append(f"{path}: bad item count {len(value)}")
        for i, item in enumerate(value):
            errs += schema_errors(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{path}.{key}: required")
        props = schema.get("properties")
        for key, sub in value.items():
            if props is not None and key in props:
                errs += schema_errors(sub, props[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += schema_errors(sub, schema["additionalProperties"], f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errs.append(f"{path}.{key}: unknown field (would be pruned)")
    return errs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_dicts(max_steps=64))
def test_generated_tasks_fit_the_schema(obj: dict[str, Any]) -> None:
    body = {k: v for k, v in obj.items() if k != "metadata"}
    assert schema_errors(body, SCHEMA) == []
    # and the CEL rules, checked by hand
    steps = obj["spec"]["steps"]
    names = [s["name"] for s in steps]
    assert len(set(names)) == len(names)
    assert all(not ("script" in s and "command" in s) for s in steps)
    assert sum(len(s.get("script", "")) for s in steps) <= 60_000


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_dicts(max_steps=64, namespace="ns"))
def test_any_valid_task_renders_to_a_well_formed_pod(obj: dict[str, Any]) -> None:
    task = decode_task(obj)
    pod = render_pod(task, SETTINGS)  # the kubelet executor's pod (agent: test_render_agent)
    meta, spec = pod["metadata"], pod["spec"]
    steps = obj["spec"]["steps"]

    # identity
    assert meta["name"] == pod_name(task.metadata.name)
    assert len(meta["name"]) <= 63
    assert DNS_SUBDOMAIN.match(meta["name"])
    assert meta["namespace"] == "ns"
    for key, value in meta["labels"].items():
        assert QUALIFIED_NAME.match(key.rpartition("/")[2])
        assert len(value) <= 63
        assert LABEL_VALUE.match(value)
    assert meta["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]

    # containers = steps, in order
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    assert [c["name"] for c in containers] == [s["name"] for s in steps]
    assert len(spec["containers"]) == 1
    assert spec["restartPolicy"] == "Never"

    # volumes and mounts are consistent
    volume_names = [v["name"] for v in spec["volumes"]]
    assert len(set(volume_names)) == len(volume_names)
    for v in spec["volumes"]:
        assert DNS_LABEL.match(v["name"])
    for s, c in zip(steps, containers, strict=True):
        paths = [m["mountPath"] for m in c["volumeMounts"]]
        assert len(set(paths)) == len(paths)
        assert "/workspace" in paths
        assert all(m["name"] in volume_names for m in c["volumeMounts"])
        assert c["volumeMounts"][: len(s.get("volumeMounts", []))] == s.get("volumeMounts", [])
        assert c.get("args", []) == s.get("args", [])
        if "script" in s:
            assert c["command"] == [f"/taskflow/scripts/{s['name']}"]
        else:
            assert c.get("command", []) == s.get("command", [])

    # scripts: annotations are valid and fit the API server's limit
    annotations = meta.get("annotations", {})
    assert len(annotations) == sum("script" in s for s in steps)
    total = 0
    for key, value in annotations.items():
        prefix, _, name = key.partition("/")
        assert DNS_SUBDOMAIN.match(prefix)
        assert len(name) <= 63
        assert QUALIFIED_NAME.match(name)
        assert value.startswith("#!")
        total += len(key.encode()) + len(value.encode())
    assert total < ANNOTATIONS_LIMIT


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task_dicts(max_steps=16, namespace="ns", sidecars=True), st.sampled_from(["agent", "kubelet"])
)
def test_any_valid_task_with_sidecars_renders_them_first(
    obj: dict[str, Any], executor: str
) -> None:
    body = {k: v for k, v in obj.items() if k != "metadata"}
    assert schema_errors(body, SCHEMA) == []
    task = decode_task(obj)
    settings_ = Settings(
        default_executor="agent" if executor == "agent" else "kubelet",
        agent_image="reg.local/agent:1",
    )
    pod = render_pod(task, settings_, images=IMAGE_COMMANDS)
    spec = pod["spec"]
    sidecars = obj["spec"].get("sidecars", [])
    init = spec.get("initContainers", [])
    first = 1 if executor == "agent" else 0
    assert [c["name"] for c in init[first : first + len(sidecars)]] == [c["name"] for c in sidecars]
    for c in init:
        assert (c.get("restartPolicy") == "Always") is (c["name"] in {x["name"] for x in sidecars})
    names = [c["name"] for c in [*init, *spec["containers"]]]
    assert len(set(names)) == len(names)
    volume_names = {v["name"] for v in spec["volumes"]}
    for c in init[first : first + len(sidecars)]:
        assert all(m["name"] in volume_names for m in c.get("volumeMounts", []))
    # the pod requests at least every sidecar's cpu and memory together, plus the largest step
    if executor == "agent":
        requests = spec.get("resources", {}).get("requests", {})
        for name in ("cpu", "memory"):
            side = sum(
                quantity(r.get("requests", r.get("limits", {})).get(name, 0))
                for r in (c.get("resources", {}) for c in sidecars)
            )
            step = max(
                (
                    quantity(r.get("requests", r.get("limits", {})).get(name, 0))
                    for r in (s.get("resources", {}) for s in obj["spec"]["steps"])
                ),
                default=0,
            )
            assert quantity(requests.get(name, 0)) == side + step


_STATES = st.sampled_from(["none", "creating", "pull", "running", "ok", "fail", "oom"])


@settings(max_examples=300, deadline=None)
@given(
    task_dicts(max_steps=6),
    st.lists(_STATES, min_size=6, max_size=6),
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
    st.booleans(),
    st.randoms(use_true_random=False),
    st.integers(0, 1000),
)
def test_status_invariants(
    obj: dict[str, Any], states: list[str], phase: str, deleting: bool, rnd: Any, now: int
) -> None:
    task = decode_task(obj)
    names = [s.name for s in task.spec.steps]
    statuses = []
    for i, (name, state) in enumerate(zip(names, states, strict=False)):
        statuses.append(
            {
                "none": None,
                "creating": waiting(name),
                "pull": waiting(name, "ImagePullBackOff"),
                "running": running(name, i * 10),
                "ok": terminated(name, 0, i * 10, i * 10 + 5),
                "fail": terminated(name, 1, i * 10, i * 10 + 5),
                "oom": terminated(name, 137, i * 10, i * 10 + 5, reason="OOMKilled"),
            }[state]
        )
    present = [s for s in statuses if s is not None]
    rnd.shuffle(present)
    cut = rnd.randint(0, len(present))
    p = decode_pod(pod_dict(task, present[:cut], present[cut:], phase=phase, deleting=deleting))
    ev = evaluate(task, p, now=at(now), settings=Settings())
    st_ = ev.status
    assert [s.name for s in st_.steps] == names
    k, n = (int(x) for x in (st_.progress or "").split("/"))
    assert n == len(names)
    assert 0 <= k <= n
    assert st_.status in ("Pending", "Running", "Successful", "Failure")
    cond = st_.conditions[0]
    assert cond.status == {"Successful": "True", "Failure": "False"}.get(st_.status, "Unknown")
    if st_.finished:
        assert ev.requeue_after is None
        assert all(s.state in ("Terminated", "NotRun") for s in st_.steps)
        assert st_.completion_time is not None
    else:
        assert st_.duration is None
    if st_.status == "Successful":
        assert k == n
        assert all(s.exit_code == 0 for s in st_.steps)
    # evaluating the finished status again changes nothing
    if st_.finished:
        again = dict(obj, status=__import__("msgspec").to_builtins(st_))
        assert (
            evaluate(decode_task(again), None, now=at(now + 99), settings=Settings()).status == st_
        )
