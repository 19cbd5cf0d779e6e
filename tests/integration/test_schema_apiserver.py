"""The generated CRD against a real API server: the seed's examples are accepted unchanged,
invalid Tasks are rejected with readable messages, and any Task the schema accepts renders
to a Pod the API server accepts (server-side dry run)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from taskflow.api import decode_task
from taskflow.api.crd import CRD_NAME, build_crd
from taskflow.api.task import GROUP, PLURAL, VERSION
from taskflow.render import render_pod
from taskflow.settings import Settings
from tests.unit.strategies import task_dicts

pytestmark = pytest.mark.integration

SEED = Path(__file__).parent.parent / "data" / "seed"
FIELD_MANAGER = "taskflow-schema-test"
#: the init-container pods (agent pods: the agent test below); the agent's steps without
#: command would need a registry lookup, which render alone does not make
KUBELET = Settings(default_executor="kubelet")
AGENT = Settings(agent_image="reg.local/agent:1")
T = TypeVar("T")


def _any(api: object) -> Any:
    """kubernetes-asyncio's stubs want model objects; these tests send plain dicts."""
    return api


class Kube:
    """Blocking helpers; each call runs on a fresh event loop with a fresh ApiClient (the
    hypothesis test is synchronous)."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def run(self, fn: Callable[[client.ApiClient], Awaitable[T]]) -> T:
        async def main() -> T:
            cfg = client.Configuration()
            await config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
            async with client.ApiClient(cfg) as api:
                return await fn(api)

        return asyncio.run(main())

    # --- Tasks ---
    def create_task(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        extra = {"dry_run": "All"} if dry_run else {}

        async def go(api: client.ApiClient) -> dict[str, Any]:
            objs = _any(client.CustomObjectsApi(api))
            out: dict[str, Any] = await objs.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, **extra
            )
            return out

        return self.run(go)

    def patch_task(
        self, name: str, patch: dict[str, Any], *, subresource: str = ""
    ) -> dict[str, Any]:
        async def go(api: client.ApiClient) -> dict[str, Any]:
            objs = _any(client.CustomObjectsApi(api))
            call = (
                objs.patch_namespaced_custom_object_status
                if subresource == "status"
                else objs.patch_namespaced_custom_object
            )
            out: dict[str, Any] = await call(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
            )
            return out

        return self.run(go)

    def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        async def go(api: client.ApiClient) -> dict[str, Any]:
            resp = await _any(client.CoreV1Api(api)).create_namespaced_pod(
                self.namespace, body, dry_run="All", _preload_content=False
            )
            out: dict[str, Any] = json.loads(await resp.read())
            return out

        return self.run(go)

    def rejection(self, body: dict[str, Any]) -> str:
        """The API server's message for a Task it must reject."""
        with pytest.raises(ApiException) as info:
            self.create_task(body, dry_run=True)
        assert info.value.status == 422, info.value.body
        return str(json.loads(info.value.body or b"{}")["message"])


async def _setup(api: client.ApiClient, namespace: str) -> None:
    ext = _any(client.ApiextensionsV1Api(api))
    await ext.patch_custom_resource_definition(
        CRD_NAME,
        build_crd(),
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    for _ in range(100):
        crd = await ext.read_custom_resource_definition(CRD_NAME)
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        if conds.get("Established") == "True" and conds.get("NamesAccepted") == "True":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"CRD not established: {conds}")
    core = _any(client.CoreV1Api(api))
    await core.create_namespace({"metadata": {"name": namespace}})
    try:  # pods need the default ServiceAccount; don't wait for the controller to make it
        await core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    except ApiException as e:
        if e.status != 409:
            raise
    # the Task endpoint can lag behind Established for a moment (404), and a changed schema
    # re-initializes its storage (429 "storage is (re)initializing")
    objs = _any(client.CustomObjectsApi(api))
    for _ in range(100):
        try:
            await objs.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            return
        except ApiException as e:
            if e.status not in (404, 429):
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def kube(kubeconfig: str) -> Iterator[Kube]:
    namespace = f"tf-schema-{uuid.uuid4().hex[:8]}"
    k = Kube(kubeconfig, namespace)
    k.run(lambda api: _setup(api, namespace))
    yield k

    async def teardown(api: client.ApiClient) -> None:
        await _any(client.CoreV1Api(api)).delete_namespace(namespace)

    k.run(teardown)


def task_body(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"steps": list(steps), **spec},
    }


def ok(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", **fields}


# --- the seed's examples -------------------------------------------------------------------------


@pytest.mark.parametrize("fname", sorted(p.name for p in SEED.glob("*.yaml")))
def test_seed_example_is_accepted_unchanged_and_its_pod_too(kube: Kube, fname: str) -> None:
    doc = yaml.safe_load((SEED / fname).read_text())
    created = kube.create_task(copy.deepcopy(doc))
    assert created["spec"] == doc["spec"]  # nothing pruned, nothing defaulted
    task = decode_task(created)
    pod = kube.create_pod(render_pod(task, KUBELET))
    assert [
        c["name"] for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
    ] == [s["name"] for s in doc["spec"]["steps"]]


# --- invalid Tasks -------------------------------------------------------------------------------


def mount(name: str, path: str) -> dict[str, str]:
    return {"name": name, "mountPath": path}


DATA = {"volumes": [{"name": "data", "emptyDir": {}}]}
#: the volumes taskflow adds to a pod (render.py), and any other name it may add later
RESERVED_MOUNTS = (
    "taskflow-bin",
    "taskflow-run-0",
    "taskflow-run-1",
    "taskflow-scripts",
    "taskflow-x",
)
#: at or under /taskflow, however written (the runtime cleans mount paths, the API server
#: compares them as strings)
RESERVED_PATHS = (
    "/taskflow",
    "/taskflow/bin/",
    "/taskflow/run/a",
    "//taskflow/run/a",
    "/taskflow//run/a",
    "taskflow/run/a",
    "/x/../taskflow/run/a",
    "/./taskflow/bin",
    "/a/../b",
)

INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    ("no-steps", task_body("x"), ["spec.steps", "at least 1 item"]),
    ("steps-missing", {**task_body("x"), "spec": {}}, ["spec.steps: Required value"]),
    (
        "too-many-steps",
        task_body("x", *(ok(f"s{i}") for i in range(65))),
        ["spec.steps", "at most 64 items"],
    ),
    (
        "step-without-name",
        task_body("x", {"image": "busybox"}),
        ["spec.steps[0].name: Required value"],
    ),
    ("step-without-image", task_body("x", {"name": "a"}), ["spec.steps[0].image: Required value"]),
    ("empty-image", task_body("x", {"name": "a", "image": ""}), ["spec.steps[0].image"]),
    (
        "image-with-whitespace",
        task_body("x", ok("a", image="busybox ")),
        ["image must not start or end with whitespace"],
    ),
    (
        "name-not-dns-label",
        task_body("x", ok("Step_1")),
        ["spec.steps[0].name", 'step name "Step_1" is not a DNS label'],
    ),
    ("name-ends-with-dash", task_body("x", ok("a-")), ['step name "a-" is not a DNS label']),
    ("name-too-long", task_body("x", ok("a" * 64)), ["spec.steps[0].name", "63"]),
    (
        "duplicate-names",
        task_body("x", ok("a"), ok("b"), ok("a")),
        ["spec.steps", "step names must be unique"],
    ),
    (
        "script-and-command",
        task_body("x", ok("a"), ok("b", script="echo", command=["sh"])),
        ["spec.steps[1]", "a step has either script or command, not both"],
    ),
    (
        "scripts-too-large",
        task_body("x", ok("a", script="x" * 30_000), ok("b", script="y" * 30_001)),
        ["at most 60000 characters in total"],
    ),
    ("script-too-large", task_body("x", ok("a", script="x" * 60_001)), ["spec.steps[0].script"]),
    (
        "reserved-volume-name",
        task_body("x", ok("a"), podTemplate={"volumes": [{"name": "taskflow-x", "emptyDir": {}}]}),
        ["podTemplate.volumes: volume taskflow-x is reserved"],
    ),
    (
        "duplicate-volumes",
        task_body(
            "x",
            ok("a"),
            podTemplate={"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
        ),
        ["volume names must be unique"],
    ),
    (
        "reserved-mount-path",
        task_body("x", ok("a", volumeMounts=[{"name": "v", "mountPath": "/taskflow/scripts/a"}])),
        ["spec.steps[0]", "step a: volumeMount v at /taskflow/scripts/a: mount paths under"],
    ),
    # taskflow's volumes are taskflow's, under both executors: a step may not mount them
    *(
        (
            f"mount-{name}-{executor}",
            task_body(
                "x",
                ok("a"),
                ok("b", volumeMounts=[{"name": "data", "mountPath": "/d"}, mount(name, "/x")]),
                executor=executor,
                podTemplate=DATA,
            ),
            ["spec.steps[1]", f"step b: volumeMount {name} is taskflow's own volume"],
        )
        for name in RESERVED_MOUNTS
        for executor in ("agent", "kubelet")
    ),
    *(
        (
            f"mount-path-{i}",
            task_body("x", ok("a"), ok("b", volumeMounts=[mount("data", path)]), podTemplate=DATA),
            [
                "spec.steps[1]",
                f"step b: volumeMount data at {path}: mount paths under /taskflow are taskflow's",
            ],
        )
        for i, path in enumerate(RESERVED_PATHS)
    ),
    *(
        (
            f"template-volume-{name}",
            task_body("x", ok("a"), podTemplate={"volumes": [{"name": name, "emptyDir": {}}]}),
            [
                "spec.podTemplate.volumes",
                f"podTemplate.volumes: volume {name} is reserved: names starting with taskflow-",
            ],
        )
        for name in (*RESERVED_MOUNTS, "taskflow-workspace")
    ),
    (
        "bad-quantity",
        task_body("x", ok("a", resources={"limits": {"cpu": "lots"}})),
        ["spec.steps[0].resources.limits.cpu"],
    ),
    (
        "bad-pull-policy",
        task_body("x", ok("a", imagePullPolicy="always")),
        ["spec.steps[0].imagePullPolicy", 'Unsupported value: "always"'],
    ),
    (
        "env-without-name",
        task_body("x", ok("a", env=[{"value": "1"}])),
        ["spec.steps[0].env[0].name: Required value"],
    ),
    (
        "bad-deadline",
        task_body("x", ok("a"), activeDeadlineSeconds=0),
        ["spec.activeDeadlineSeconds"],
    ),
    ("args-not-strings", task_body("x", ok("a", args=[1])), ["spec.steps[0].args[0]"]),
    (
        "timeout-not-a-duration",
        task_body("x", ok("a"), timeout="10 minutes"),
        ["spec.timeout", '"10 minutes" is not a duration such as 30s, 10m or 1h30m'],
    ),
    ("timeout-negative", task_body("x", ok("a"), timeout="-1s"), ["is not a duration"]),
    (
        "too-many-retries",
        task_body("x", ok("a"), retries=11),
        ["spec.retries", "less than or equal to 10"],
    ),
    ("negative-ttl", task_body("x", ok("a"), ttlSecondsAfterFinished=-1), ["spec.ttlSeconds"]),
    (
        "unknown-executor",
        task_body("x", ok("a"), executor="docker"),
        ["spec.executor", 'Unsupported value: "docker"'],
    ),
    *(
        (
            f"kubelet-with-{field}",
            task_body("x", ok("a"), ok("b", **{field: value}), executor="kubelet"),
            ["timeout, onError and results of a step need executor: agent"],
        )
        for field, value in (
            ("timeout", "30s"),
            ("onError", "continue"),
            ("results", [{"name": "digest"}]),
        )
    ),
    *(
        (
            f"kubelet-with-{field}",
            task_body("x", ok("a"), ok("b", **{field: value}), executor="kubelet"),
            ["retries and retryDelay of a step need executor: agent"],
        )
        for field, value in (("retries", 2), ("retryDelay", "5s"))
    ),
    ("too-many-step-retries", task_body("x", ok("a", retries=11)), ["spec.steps[0].retries"]),
    (
        "retry-delay-not-a-duration",
        task_body("x", ok("a", retries=1, retryDelay="later")),
        ["spec.steps[0].retryDelay"],
    ),
    (
        "duplicate-sidecar-names",
        task_body("x", ok("a"), sidecars=[ok("db"), ok("db")]),
        ["sidecar names must be unique"],
    ),
    (
        "sidecar-named-as-a-step",
        task_body("x", ok("a"), sidecars=[ok("a")]),
        ['sidecar "a" has the name of a step'],
    ),
    (
        "sidecar-with-a-reserved-name",
        task_body("x", ok("a"), sidecars=[ok("taskflow-db")]),
        ['sidecar name "taskflow-db" is reserved'],
    ),
    (
        "sidecar-mounting-taskflow-bin",
        task_body(
            "x",
            ok("a"),
            sidecars=[ok("db", volumeMounts=[{"name": "taskflow-bin", "mountPath": "/x"}])],
        ),
        ["sidecar db: volumeMount taskflow-bin is taskflow's own volume"],
    ),
    (
        "step-timeout-not-a-duration",
        task_body("x", ok("a", timeout="soon")),
        ["spec.steps[0].timeout", '"soon" is not a duration'],
    ),
    (
        "bad-on-error",
        task_body("x", ok("a", onError="ignore")),
        ["spec.steps[0].onError", 'Unsupported value: "ignore"'],
    ),
    (
        "bad-result-name",
        task_body("x", ok("a", results=[{"name": "a.b"}])),
        ["spec.steps[0].results[0].name"],
    ),
    (
        "duplicate-result-names",
        task_body("x", ok("a", results=[{"name": "r"}, {"name": "r"}])),
        ["result names must be unique within a step"],
    ),
]


def test_agent_fields_are_accepted_with_the_agent_or_no_executor(kube: Kube) -> None:
    steps = (
        ok(
            "a",
            timeout="1m30s",
            onError="continue",
            results=[{"name": "d", "description": "x"}],
            retries=2,
            retryDelay="500ms",
        ),
        ok("b", command=["echo", "$(steps.a.results.d)"]),
    )
    for executor in ({"executor": "agent"}, {}):
        body = task_body("agent-fields", *steps, **executor)
        assert kube.create_task(body, dry_run=True)["spec"] == body["spec"]


def test_sidecars_are_accepted_under_both_executors(kube: Kube) -> None:
    web = ok(
        "web",
        command=["httpd", "-f", "-p", "8080"],
        ports=[{"containerPort": 8080}],
        startupProbe={"tcpSocket": {"port": 8080}},
        volumeMounts=[{"name": "taskflow-workspace", "mountPath": "/workspace"}],
    )
    for executor in ("agent", "kubelet"):
        body = task_body("with-sidecars", ok("a"), sidecars=[web], executor=executor)
        spec = kube.create_task(body, dry_run=True)["spec"]
        assert spec["sidecars"][0]["name"] == "web"
        assert spec["sidecars"][0]["startupProbe"]["tcpSocket"] == {"port": 8080}


DURATIONS = json.loads((SEED.parent / "durations.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", DURATIONS, ids=lambda c: ascii(c["text"]))
def test_the_api_server_reads_durations_as_the_table_says(kube: Kube, case: dict[str, Any]) -> None:
    """The CRD's CEL rule (RE2) against tests/data/durations.json, the grammar both parsers
    are held to (tests/unit/test_durations.py)."""
    body = task_body("d", ok("a"), timeout=case["text"])
    if case["seconds"] is None:
        assert "is not a duration" in kube.rejection(body)
    else:
        kube.create_task(body, dry_run=True)


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_task_is_rejected_with_a_readable_message(
    kube: Kube, body: dict[str, Any], expected: list[str]
) -> None:
    message = kube.rejection(body)
    for part in expected:
        assert part in message, message


def test_spec_is_immutable_but_metadata_is_not(kube: Kube) -> None:
    kube.create_task(task_body("immutable", ok("a"), ok("b")))
    with pytest.raises(ApiException) as info:
        kube.patch_task("immutable", {"spec": {"steps": [ok("a")]}})
    assert info.value.status == 422
    message = json.loads(info.value.body or b"{}")["message"]
    assert "spec is immutable except spec.cancel: delete and re-create the Task" in message
    for change in ({"activeDeadlineSeconds": 5}, {"retries": 1}, {"timeout": "1h"}):
        with pytest.raises(ApiException) as info:
            kube.patch_task("immutable", {"spec": change})
        assert "spec is immutable except spec.cancel" in (info.value.body or ""), change
    patched = kube.patch_task("immutable", {"metadata": {"labels": {"team": "x"}}})
    assert patched["metadata"]["labels"] == {"team": "x"}


def test_a_final_status_word_cannot_be_changed_by_anyone(kube: Kube) -> None:
    kube.create_task(task_body("final", ok("a")))
    kube.patch_task("final", {"status": {"status": "Running"}}, subresource="status")
    kube.patch_task("final", {"status": {"status": "Failure"}}, subresource="status")
    for word in ("Running", "Successful", None):
        with pytest.raises(ApiException) as info:
            kube.patch_task("final", {"status": {"status": word}}, subresource="status")
        assert info.value.status == 422
        assert "a finished Task's status cannot change" in (info.value.body or ""), word
    # other status fields (e.g. a reader's annotations of it) are not frozen by this rule
    kube.patch_task("final", {"status": {"progress": "1/1"}}, subresource="status")


def test_cancel_is_the_one_change_allowed_and_cannot_be_undone(kube: Kube) -> None:
    kube.create_task(task_body("cancel-me", ok("a"), ok("b")))
    kube.patch_task("cancel-me", {"spec": {"cancel": False}})  # no change in meaning
    cancelled = kube.patch_task("cancel-me", {"spec": {"cancel": True}})
    assert cancelled["spec"]["cancel"] is True
    kube.patch_task("cancel-me", {"spec": {"cancel": True}})  # idempotent
    for undo in ({"cancel": False}, {"cancel": None}):
        with pytest.raises(ApiException) as info:
            kube.patch_task("cancel-me", {"spec": undo})
        assert info.value.status == 422
        message = json.loads(info.value.body or b"{}")["message"]
        assert "a cancel cannot be undone: spec.cancel stays true once set" in message
    with pytest.raises(ApiException):  # cancel does not open the door to other changes
        kube.patch_task("cancel-me", {"spec": {"cancel": True, "steps": [ok("a")]}})


def test_large_multibyte_scripts_fit_in_annotations(kube: Kube) -> None:
    # the most script bytes the schema allows: 60,000 four-byte characters in total
    body = task_body(
        "big-scripts",
        ok("a", script="😀" * 30_000),
        ok("b", script="#!/bin/sh\n" + "😀" * 29_990),
        ok("c"),
    )
    task = decode_task(
        kube.create_task(body, dry_run=True)
        | {"metadata": {"name": "big-scripts", "uid": str(uuid.uuid4())}}
    )
    kube.create_pod(render_pod(task, KUBELET))


def test_the_workspace_and_other_paths_stay_mountable(kube: Kube) -> None:
    body = task_body(
        "own-mounts",
        ok("a", command=["true"],
           volumeMounts=[mount("taskflow-workspace", "/src"), mount("data", "/taskflowx")]),
        ok("b", command=["true"], volumeMounts=[mount("data", "/opt/taskflow/run"),
                                                 mount("taskflow-workspace", "/workspace/.cache"),
                                                 mount("data", "/a/./b"),
                                                 mount("data", "/x/..y")]),
        podTemplate=DATA | {"terminationGracePeriodSeconds": 1},
    )  # fmt: skip
    for executor in ("agent", "kubelet"):
        created = kube.create_task(
            body | {"spec": body["spec"] | {"executor": executor}}, dry_run=True
        )
        task = decode_task(created | {"metadata": {"name": "own-mounts", "uid": str(uuid.uuid4())}})
        pod = kube.create_pod(render_pod(task, AGENT))
        mounts = [m["mountPath"] for c in pod["spec"]["containers"] for m in c["volumeMounts"]]
        assert "/opt/taskflow/run" in mounts


def test_the_largest_task_is_checked_within_the_cel_budget(kube: Kube) -> None:
    # 64 steps x 64 mounts (the schema's maximum), long paths: the new rules stay within the
    # API server's runtime budget for one object (the request-size limit bounds the rest)
    mounts = [mount("data", f"/m{j}/" + "p" * 600) for j in range(64)]
    body = task_body(
        "large", *(ok(f"s{i}", volumeMounts=mounts) for i in range(64)), podTemplate=DATA
    )
    assert len(json.dumps(body)) > 2_000_000
    assert kube.create_task(body, dry_run=True)["spec"] == body["spec"]
    bad = copy.deepcopy(body)
    bad["spec"]["steps"][63]["volumeMounts"][63] = mount("taskflow-run-62", "/x")
    assert "step s63: volumeMount taskflow-run-62 is taskflow's own volume" in kube.rejection(bad)


# --- property: schema-valid Tasks render to Pods the API server accepts -------------------------


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(obj=task_dicts(max_steps=64, service_accounts=["default"]))
def test_any_task_the_schema_accepts_renders_to_a_pod_the_server_accepts(
    kube: Kube, obj: dict[str, Any]
) -> None:
    body = copy.deepcopy(obj)
    body["metadata"] = {"name": obj["metadata"]["name"]}
    accepted = kube.create_task(body, dry_run=True)  # the strategy only makes valid Tasks
    assert accepted["spec"] == obj["spec"]
    accepted["metadata"]["uid"] = obj["metadata"]["uid"]  # dry run: no UID assigned
    pod = render_pod(decode_task(accepted), KUBELET)
    created = kube.create_pod(pod)
    assert created["metadata"]["name"] == pod["metadata"]["name"]
    assert created["metadata"].get("annotations", {}) == pod["metadata"].get("annotations", {})


def test_agent_pods_are_accepted_by_the_api_server(kube: Kube) -> None:
    body = task_body(
        "agent-pod",
        ok("a", command=["sh", "-c", "echo x > $(results.r.path)"], results=[{"name": "r"}],
           resources={"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}),
        ok("b", script="echo $(steps.a.results.r)", timeout="30s", onError="continue",
           resources={"requests": {"cpu": "500m", "ephemeral-storage": "1Gi"}}),
        *(ok(f"s{i}", command=["true"]) for i in range(60)),
        executor="agent",
        podTemplate={"securityContext": {"runAsUser": 65532, "runAsNonRoot": True}},
    )  # fmt: skip
    created = kube.create_task(body, dry_run=True)
    task = decode_task(created | {"metadata": {"name": "agent-pod", "uid": str(uuid.uuid4())}})
    pod = kube.create_pod(render_pod(task, Settings(agent_image="reg.local/agent:1")))
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["taskflow-install"]
    assert len(spec["containers"]) == 62
    # pod-level resources (PodLevelResources, on by default in 1.34) are kept: max, not sum
    assert spec["resources"] == {"requests": {"cpu": "1", "memory": "64Mi"}}
