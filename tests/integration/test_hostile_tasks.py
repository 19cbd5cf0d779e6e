"""Malformed and hostile Tasks through the real API server.

Hypothesis builds Tasks that are too big, too deep, oddly named, out of range or simply
junk. Each one is POSTed by the admin client while an operator runs in-process, and must
either be rejected at apply with a readable message that names the offending field, or be
accepted and then end with a reason (a finished status with a `Succeeded` condition reason)
-- without crashing the operator or making it reconcile the Task over and over.

Accepted Tasks never reach a kubelet (`NO_NODE`): they carry a short `spec.timeout`, so the
truthful ending is `Failure/TimedOut`, or `Failure/InvalidPodSpec` when the API server
refuses the pod taskflow built from them. Examples are derandomized (CI sees the same Tasks
each run) and few enough that the file runs in about a minute on 2 cores.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from taskflow.api.crd import build_crd
from taskflow.api.task import MAX_SCRIPT_CHARS, MAX_STEPS
from taskflow.api.task_status import FINISHED
from taskflow.engine.kube import ApiError, Kube
from tests.integration.kube_sim import (
    CRDS,
    NO_NODE,
    TASKS,
    dec,
    enc,
    eventually,
    install_crd,
    operator,
)

pytestmark = pytest.mark.integration

Obj = dict[str, Any]

#: Reconciles one hostile Task may cost before it has finished and gone quiet. A healthy
#: Task needs a handful (create the pod, see it, time out, see the stop); a hot loop makes
#: hundreds within the seconds an example runs.
MAX_RECONCILES = 25
#: A Task accepted with this timeout must finish within FINISH_WITHIN seconds.
TIMEOUT = "2s"
FINISH_WITHIN = 30.0
#: Reasons an accepted hostile Task may end with (never a reason that blames a step: no step
#: runs, no kubelet sees the pod).
ENDINGS = {"TimedOut", "InvalidPodSpec", "InvalidSpec"}


@dataclass(frozen=True)
class Case:
    """A hostile Task and the field it attacks (a rejection must name it)."""

    what: str
    field: str
    spec: Obj
    name: str | None = None


def base_spec(**extra: Any) -> Obj:
    spec: Obj = {
        "steps": [{"name": "s0", "image": "busybox:1.36", "command": ["true"]}],
        "podTemplate": {"nodeSelector": dict(NO_NODE)},
        "timeout": TIMEOUT,
    }
    spec.update(extra)
    return spec


def step(name: str = "s0", **extra: Any) -> Obj:
    out: Obj = {"name": name, "image": "busybox:1.36", "command": ["true"]}
    out.update(extra)
    return out


# -- strategies -----------------------------------------------------------------------------

#: Text that is not plain ASCII: emoji, right-to-left marks, combining characters, NUL.
hostile_text = st.one_of(
    st.sampled_from(
        ["", " ", "\x00", "\u202e", "e\u0301", "🦀" * 3, "ﬁ", "Ω", "a" * 300, "../../etc/passwd"]
    ),
    st.text(min_size=1, max_size=40),
)

names = st.builds(
    lambda s, kind: Case("metadata.name", "metadata.name", base_spec(), name=s + kind),
    st.sampled_from(["t", "T", "t.", "-t", "t-", "t" * 250, "t_", "tä", "t..t"]),
    st.sampled_from(["", "x", "🦀", "-pod", ".a.b", " ", "/"]),
)

step_counts = st.builds(
    lambda n: Case(f"{n} steps", "spec.steps", base_spec(steps=[step(f"s{i}") for i in range(n)])),
    st.sampled_from([0, 1, MAX_STEPS - 1, MAX_STEPS, MAX_STEPS + 1, 200]),
)

step_names = st.builds(
    lambda s: Case("step name", "spec.steps", base_spec(steps=[step(s), step("z")])),
    st.one_of(hostile_text, st.sampled_from(["z", "Z", "a" * 63, "a" * 64, "taskflow-x"])),
)

images = st.builds(
    lambda s: Case("image", "spec.steps[0].image", base_spec(steps=[step(image=s)])),
    st.one_of(
        hostile_text,
        st.sampled_from([" busybox", "busybox ", "x" * 4097, "a;rm -rf /", "UPPER:Case"]),
    ),
)

#: An env var taken from a Secret that does not exist (a reference the pod accepts).
missing_refs = st.builds(
    lambda key: Case(
        "env from a missing Secret",
        "spec.steps[0].env",
        base_spec(
            steps=[
                step(
                    env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": key}}}]
                )
            ]
        ),
    ),
    st.sampled_from(["k", "", "../k", "🦀"]),
)

envs = st.builds(
    lambda k, v, n: Case(
        "env", "spec.steps[0].env", base_spec(steps=[step(env=[{"name": k, "value": v}] * n)])
    ),
    hostile_text,
    hostile_text,
    st.sampled_from([1, 2]),
)

#: Valid Go durations are kept short (an accepted Task must time out during the example).
timeouts = st.builds(
    lambda s: Case("timeout", "spec.timeout", base_spec(timeout=s)),
    st.one_of(
        st.sampled_from(["0s", "1s", "500ms", "1s500ms", "0.5s"]),
        st.sampled_from(["", "1d", "-1s", "10", "1.s", "s", "∞", "1s ", "1" * 70 + "s"]),
        hostile_text,
    ),
)

retries = st.builds(
    lambda n: Case("retries", "spec.retries", base_spec(retries=n)),
    st.one_of(
        st.integers(min_value=-3, max_value=13),
        st.sampled_from([2**31, -(2**31), 2**62]),
        st.sampled_from(["3", 1.5, None, True]),
    ),
)


def _scripts(sizes: tuple[int, ...], char: str) -> Case:
    steps = [step(f"s{i}", command=None, script=char * n) for i, n in enumerate(sizes)]
    for s in steps:
        del s["command"]
    return Case(f"scripts {sizes} x {char!r}", "spec.steps", base_spec(steps=steps))


scripts = st.builds(
    _scripts,
    st.sampled_from(
        [
            (MAX_SCRIPT_CHARS,),
            (MAX_SCRIPT_CHARS + 1,),
            (MAX_SCRIPT_CHARS // 2, MAX_SCRIPT_CHARS // 2),
            (MAX_SCRIPT_CHARS // 2, MAX_SCRIPT_CHARS // 2 + 1),
            (MAX_SCRIPT_CHARS - 1,),
        ]
    ),
    st.sampled_from(["x", "é", "🦀", "\n"]),
)


def _nested(depth: int) -> Obj:
    out: Obj = {"leaf": True}
    for _ in range(depth):
        out = {"n": out}
    return out


pod_templates = st.builds(
    lambda junk, field: Case("podTemplate", field, base_spec(podTemplate=junk)),
    st.sampled_from(
        [
            {"nodeSelector": "not-a-map"},
            {"nodeSelector": {**NO_NODE, "k": 1}},
            {"nodeSelector": NO_NODE, "volumes": [{"name": "taskflow-scripts", "emptyDir": {}}]},
            {"nodeSelector": NO_NODE, "volumes": [{"name": "v", "emptyDir": {}}] * 2},
            {"nodeSelector": NO_NODE, "securityContext": {"runAsUser": -1}},
            {"nodeSelector": NO_NODE, "securityContext": {"runAsUser": "root"}},
            {"nodeSelector": NO_NODE, "tolerations": [{"operator": "Bogus"}]},
            {"nodeSelector": NO_NODE, "affinity": _nested(40)},
            {"nodeSelector": NO_NODE, "junk": _nested(200)},
            {"nodeSelector": NO_NODE, "terminationGracePeriodSeconds": -5},
            {"nodeSelector": NO_NODE, "serviceAccountName": "Not_A_Name"},
            {"nodeSelector": NO_NODE, "priorityClassName": "no-such-class"},
            # references to what does not exist
            {"nodeSelector": NO_NODE, "imagePullSecrets": [{"name": "no-such-secret"}]},
            {
                "nodeSelector": NO_NODE,
                "volumes": [{"name": "cm", "configMap": {"name": "no-such-configmap"}}],
            },
            {"nodeSelector": NO_NODE, "runtimeClassName": "no-such-runtime-class"},
        ]
    ),
    st.just("spec.podTemplate"),
)

huge = st.builds(
    lambda n, size: Case(
        f"{n} env vars of {size}",
        "spec.steps[0].env",
        base_spec(steps=[step(env=[{"name": f"V{i}", "value": "v" * size} for i in range(n)])]),
    ),
    st.sampled_from([100, 1000, 3000]),
    st.sampled_from([10, 300]),
)

nested_spec = st.builds(
    lambda depth: Case(f"spec nested {depth}", "spec", base_spec(extra=_nested(depth))),
    st.sampled_from([10, 100, 1000]),
)

cases = st.one_of(
    names,
    step_counts,
    step_names,
    images,
    envs,
    missing_refs,
    timeouts,
    retries,
    scripts,
    pod_templates,
    huge,
    nested_spec,
)


# -- the test -------------------------------------------------------------------------------


async def _our_crd(admin: Kube) -> None:
    """The cluster is shared and the CRD is cluster-wide: a tree with an older CRD may have
    applied it since the module started (its schema prunes newer fields such as
    spec.timeout). Put ours back before each example if so."""
    crd = build_crd()
    current = dec(await admin.request("GET", f"{CRDS}/{crd['metadata']['name']}"))
    if current["spec"]["versions"] != crd["spec"]["versions"]:
        await install_crd(admin)


async def _post(admin: Kube, namespace: str, case: Case) -> Obj | str:
    """The created Task, or the API server's message if it refused it."""
    name = case.name if case.name is not None else f"h-{uuid.uuid4().hex[:10]}"
    manifest = {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": case.spec,
    }
    try:
        return dec(
            await admin.request("POST", TASKS.format(ns=namespace), body=enc.encode(manifest))
        )
    except ApiError as exc:
        refused = exc
    # 400/422 are the answers to a bad object; anything else is the server's (or our) fault.
    assert refused.status in (400, 422), f"{case.what}: unexpected HTTP {refused.status}"
    return str(refused)


async def _finished(admin: Kube, namespace: str, name: str) -> Obj | None:
    data = dec(await admin.request("GET", f"{TASKS.format(ns=namespace)}/{name}"))
    st_: Obj = data.get("status") or {}
    return st_ if st_.get("status") in FINISHED else None


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(case=cases)
async def test_hostile_task_is_refused_or_ends(
    case: Case, admin: Kube, ns: str, kubeconfig: str
) -> None:
    await _our_crd(admin)
    async with operator(kubeconfig, ns) as op:
        created = await _post(admin, ns, case)
        if isinstance(created, str):
            event(f"{case.field}: rejected")
            # Rejected at apply: the message is readable and names the field.
            assert case.field in created, f"{case.what}: {created!r} does not name {case.field}"
            assert len(created) < 20_000, created[:500]
            return
        name = created["metadata"]["name"]
        try:

            async def finished() -> Obj | None:
                return await _finished(admin, ns, name)

            status: Obj = await eventually(finished, within=FINISH_WITHIN)
            cond = next(c for c in status["conditions"] if c["type"] == "Succeeded")
            event(f"{case.field}: accepted, ended {cond.get('reason')}")
            assert cond.get("reason") in ENDINGS, f"{case.what}: ended {status}"
            assert cond.get("message"), f"{case.what}: no message: {status}"
            # Finished and quiet: nothing queued, in flight or scheduled for it any more ...
            uid = created["metadata"]["uid"]
            await eventually(
                lambda: (
                    len(op.queue) == 0
                    and not op.queue.is_processing(uid)
                    and op.queue.pending_delay(uid) is None
                ),
                within=10,
            )
            # ... and it got there in a bounded number of reconciles.
            total = sum(
                op.metrics.reconcile_count(r) for r in ("success", "error", "requeue_after")
            )
            assert total <= MAX_RECONCILES, f"{case.what}: {total} reconciles"
            healthy, lines = op.health()
            assert healthy, lines
        finally:
            await admin.request("DELETE", f"{TASKS.format(ns=ns)}/{name}")
