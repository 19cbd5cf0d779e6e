"""`taskflow policy` against a real API server: unresolvable result references are refused
at create, in the operator's own words; valid ones pass; a Task past the policy's budget is
let through for the operator's check (failurePolicy Ignore)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import pytest
import pytest_asyncio

from taskflow.api import decode_task
from taskflow.api.executor import reference_problem
from taskflow.api.policy import MESSAGE_PREFIX, POLICY_NAME, admission_policy
from taskflow.engine.kube import ApiError, Kube
from tests.integration.kube_sim import TASKS, dec, enc, eventually

pytestmark = pytest.mark.integration

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
PLURALS = {
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


def _path(obj: dict[str, Any]) -> str:
    return f"{ADMISSION}/{PLURALS[obj['kind']]}"


def step(name: str, **fields: Any) -> dict[str, Any]:
    """A step; ``command=None`` leaves command out (a script step)."""
    s = {"name": name, "image": "busybox:1.28", "command": ["true"], **fields}
    return {k: v for k, v in s.items() if v is not None}


def task(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"name": f"refs-{uuid.uuid4().hex[:8]}"},
        "spec": {"executor": "agent", "steps": steps},
    }


R = [{"name": "out"}]
WRITE = step("a", results=R)

BAD: list[list[dict[str, Any]]] = [
    [WRITE, step("b", command=["echo", "$(steps.zz.results.out)"])],
    [WRITE, step("b", args=["$(steps.a.results.nope)"])],
    [WRITE, step("b", env=[{"name": "X", "value": "$(steps.b.results.out)"}], results=R)],
    [WRITE, step("b", command=None, script="echo $(steps.c.results.out)"), step("c", results=R)],
]


@pytest_asyncio.fixture(scope="module")
async def policy(admin: Kube) -> AsyncIterator[None]:
    """The policy installed for this module only (it is cluster-wide), removed afterwards."""
    objs = admission_policy()
    for obj in objs:
        with suppress(ApiError):
            await admin.request("DELETE", f"{_path(obj)}/{POLICY_NAME}")
        await admin.request("POST", _path(obj), body=enc.encode(obj))
    yield
    for obj in reversed(objs):
        with suppress(ApiError):
            await admin.request("DELETE", f"{_path(obj)}/{POLICY_NAME}")


async def _create(admin: Kube, ns: str, body: dict[str, Any]) -> ApiError | None:
    """None when created, else the API server's refusal."""
    try:
        await admin.request("POST", TASKS.format(ns=ns), body=enc.encode(body))
    except ApiError as exc:
        return exc
    return None


async def _wait_enforced(admin: Kube, ns: str) -> None:
    """A new policy takes effect once the API server has compiled it (about a second)."""

    async def refused() -> bool:
        return await _create(admin, ns, task(BAD[0])) is not None

    await eventually(refused, within=30, interval=0.3)


@pytest.mark.parametrize("steps", BAD, ids=["unknown-step", "no-such-result", "self", "later"])
async def test_a_bad_reference_is_refused_in_the_operators_words(
    admin: Kube, ns: str, policy: None, steps: list[dict[str, Any]]
) -> None:
    await _wait_enforced(admin, ns)
    body = task(steps)
    expected = reference_problem(decode_task(body))
    assert expected is not None
    err = await _create(admin, ns, body)
    assert err is not None, "the API server accepted a Task whose reference cannot resolve"
    assert err.status == 422, err
    assert f"{MESSAGE_PREFIX}{expected}" in err.message, err.message


async def test_every_bad_reference_is_named(admin: Kube, ns: str, policy: None) -> None:
    await _wait_enforced(admin, ns)
    refs = ["$(steps.zz.results.out)", "$(steps.a.results.nope)", "$(steps.b.results.out)"]
    err = await _create(admin, ns, task([WRITE, step("b", args=refs, results=R)]))
    assert err is not None
    for ref in refs:
        assert ref in err.message, err.message


async def test_resolvable_references_everywhere_are_accepted(
    admin: Kube, ns: str, policy: None
) -> None:
    await _wait_enforced(admin, ns)
    ref = "$(steps.a.results.out)"
    body = task(
        [
            WRITE,
            step("b", command=["echo", ref], args=[ref], env=[{"name": "X", "value": ref}]),
            step("c", command=None, script=f"echo {ref} $(results.out.path)", results=R),
            step("d", args=["$(steps.c.results.out)", "$(other) $(steps.) $(steps.a.results)"]),
        ]
    )
    assert reference_problem(decode_task(body)) is None
    assert await _create(admin, ns, body) is None


async def test_a_task_past_the_policys_budget_is_left_to_the_operator(
    admin: Kube, ns: str, policy: None
) -> None:
    """Thousands of references exhaust the policy's runtime cost; Ignore admits the Task,
    whose bad reference the operator's own check then reports (InvalidSpec)."""
    await _wait_enforced(admin, ns)
    steps = [step(f"s{i}", results=R) for i in range(64)]
    for i, s in enumerate(steps[1:], start=1):
        s["args"] = [" ".join(f"$(steps.s{j}.results.out)" for j in range(i))] * 8
    steps[-1]["args"].append("$(steps.nope.results.out)")
    body = task(steps)
    assert reference_problem(decode_task(body)) is not None
    assert await _create(admin, ns, body) is None
    created = dec(await admin.request("GET", f"{TASKS.format(ns=ns)}/{body['metadata']['name']}"))
    assert created["metadata"]["name"] == body["metadata"]["name"]
