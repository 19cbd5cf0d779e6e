"""``kubectl taskflow`` against a real kube-apiserver, as a process (exit codes, stdout,
stderr), with the engine in-process and the test playing the kubelet (``kube_sim``).

There is no kubelet at this tier, so no container has a log: the pods are bound to a node
that does not exist and the API server answers each log request with an error. What these
tests check is everything around the logs: the order in which ``logs -f`` asks for the
steps, what it says while it waits, that it ends with the Task and exits with its result,
and the other commands. The logs' content is checked on a real node in
``tests/e2e/test_ctl_e2e.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import yaml
from anyio.streams.text import TextReceiveStream

from taskflow.api.crd import build_crd
from taskflow.engine.kube import Kube
from tests.integration.kube_sim import (
    MERGE,
    NO_NODE,
    TASKS,
    create_task,
    enc,
    eventually,
    get_task,
    kubelet,
    operator,
    sa_kubeconfig,
    status_is,
    steps,
    the_pod,
)

pytestmark = pytest.mark.integration

CTL = [sys.executable, "-c", "import sys, taskflow.ctl as c; sys.exit(c.main())"]
#: every command of these tests ends (or is stopped) within this many seconds
WITHIN = 60.0


def cli(kubeconfig: str, ns: str, *args: str) -> list[str]:
    return [*CTL, "--kubeconfig", kubeconfig, "-n", ns, *args]


async def ctl(kubeconfig: str, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    with anyio.fail_after(WITHIN):
        done = await anyio.run_process(cli(kubeconfig, ns, *args), check=False)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


class Running:
    """A ``kubectl taskflow`` process whose output is collected as it comes."""

    def __init__(self, proc: anyio.abc.Process) -> None:
        self.proc = proc
        self.out = ""
        self.err = ""

    async def _collect(self, stream: anyio.abc.ByteReceiveStream, attr: str) -> None:
        async for text in TextReceiveStream(stream):
            setattr(self, attr, getattr(self, attr) + text)

    async def says(self, pattern: str, *, on: str = "err") -> str:
        """Wait until stdout/stderr matches ``pattern``; the match."""

        def check() -> str | None:
            m = re.search(pattern, getattr(self, on))
            return m.group(0) if m else None

        try:
            found: str = await eventually(check, within=WITHIN)
        except AssertionError:
            raise AssertionError(f"no {pattern!r} in: out={self.out!r} err={self.err!r}") from None
        return found


@asynccontextmanager
async def running(kubeconfig: str, ns: str, *args: str) -> AsyncIterator[Running]:
    proc = await anyio.open_process(cli(kubeconfig, ns, *args))
    r = Running(proc)
    try:
        async with anyio.create_task_group() as tg:
            assert proc.stdout is not None
            assert proc.stderr is not None
            tg.start_soon(r._collect, proc.stdout, "out")
            tg.start_soon(r._collect, proc.stderr, "err")
            yield r
            if proc.returncode is None:
                proc.terminate()
            with anyio.fail_after(10):
                await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_done(r: Running) -> int:
    with anyio.fail_after(WITHIN):
        return await r.proc.wait()


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


async def test_logs_follow_reads_the_steps_in_order_and_exits_with_the_result(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "build", steps("fetch", "compile", "ship"))
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        await status_is(admin, ns, "build", status="Pending", podName="build-pod")
        async with running(kubeconfig, ns, "logs", "-f", "build") as r:
            await r.says("waiting for step fetch to start")
            await kubelet(admin, pod, "Pending", {"fetch": ("running", 1)})
            await r.says("step fetch has no log")  # no kubelet: asked for, answered with an error
            done = {"fetch": ("terminated", 0, 1, 5)}
            await kubelet(admin, pod, "Pending", {**done, "compile": ("running", 6)})
            await r.says("step compile has no log")
            assert "step ship has no log" not in r.err  # not asked for before it starts
            done["compile"] = ("terminated", 0, 6, 9)
            await kubelet(admin, pod, "Running", {**done, "ship": ("running", 10)})
            await r.says("step ship has no log")
            await kubelet(admin, pod, "Failed", {**done, "ship": ("terminated", 3, 10, 66)})
            assert await wait_done(r) == 1
            await r.says(r"task/build Failure \(StepFailed: .*ship.*3.*\) after 1m5s\n")
        asked = [m.group(1) for m in re.finditer(r"step (\w+) has no log", r.err)]
        assert asked == ["fetch", "compile", "ship"]
        assert r.out == ""  # stdout holds the steps' output only


async def test_logs_of_a_successful_task_exit_0_and_a_gone_pod_is_named(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "ok", steps("a", "b"))
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        finished = {"a": ("terminated", 0, 1, 2), "b": ("terminated", 0, 3, 14)}
        await kubelet(admin, pod, "Succeeded", finished)
        await status_is(admin, ns, "ok", status="Successful")
        done = await ctl(kubeconfig, ns, "logs", "-f", "ok")
        assert done.returncode == 0, done.stderr
        assert lines(done.stderr)[-1] == "task/ok Successful in 13s"
    # the pod is deleted (as a TTL would): the Task stays Successful, its logs are lost
    # (at once: no kubelet would confirm a graceful deletion)
    await admin.request(
        "DELETE",
        f"/api/v1/namespaces/{ns}/pods/ok-pod",
        body=enc.encode({"gracePeriodSeconds": 0}),
    )

    async def pod_gone() -> bool:
        listed = await admin.request("GET", f"/api/v1/namespaces/{ns}/pods")
        return b'"ok-pod"' not in listed

    await eventually(pod_gone, within=30)
    done = await ctl(kubeconfig, ns, "logs", "ok")
    assert done.returncode == 0
    assert lines(done.stderr) == [
        "pod ok-pod is gone (deleted, or removed after the Task ended): "
        "the logs of step a and later steps are lost",
        "task/ok Successful in 13s",
    ]


async def test_logs_of_a_pending_task_say_what_they_wait_for(
    admin: Kube, ns: str, kubeconfig: str
) -> None:
    # no operator of ours: nobody creates the pod (on a shared cluster an operator watching
    # every namespace may create one; its pod stays unscheduled: nodeSelector NO_NODE)
    await create_task(admin, ns, "idle", steps("a"))
    done = await ctl(kubeconfig, ns, "logs", "idle")
    assert done.returncode == 0
    (summary,) = lines(done.stderr)
    assert summary.startswith("task/idle Pending")
    async with running(kubeconfig, ns, "logs", "-f", "idle") as r:
        await r.says(r"waiting for (the pod of task/idle|step a to start \(Unschedulable: .*\))\n")
        assert r.proc.returncode is None  # it waits


async def test_run_follow_creates_with_generate_name_and_exits_with_the_result(
    admin: Kube, ns: str, kubeconfig: str, tmp_path: Path
) -> None:
    manifest = {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {"generateName": "ci-"},
        "spec": {"steps": steps("unit", "lint"), "podTemplate": {"nodeSelector": NO_NODE}},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(manifest))
    async with (
        operator(kubeconfig, ns),
        running(kubeconfig, ns, "run", "-f", str(path), "--follow") as r,
    ):
        created = await r.says(r"task/ci-\w+ created\n", on="out")
        name = created.split()[0].removeprefix("task/")
        task = await get_task(admin, ns, name)
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        await kubelet(
            admin, pod, "Running", {"unit": ("terminated", 0, 1, 2), "lint": ("running", 3)}
        )
        await r.says("step lint has no log")
        await kubelet(
            admin,
            pod,
            "Succeeded",
            {"unit": ("terminated", 0, 1, 2), "lint": ("terminated", 0, 3, 4)},
        )
        assert await wait_done(r) == 0
        await r.says(rf"task/{name} Successful in 3s\n")
    assert r.out == f"task/{name} created\n"


async def test_run_without_follow_and_a_rejected_manifest(
    admin: Kube, ns: str, kubeconfig: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump({"kind": "Task", "metadata": {"name": "x"}, "spec": {"steps": steps("a")}})
    )
    done = await ctl(kubeconfig, ns, "run", "-f", str(good))
    assert (done.returncode, done.stdout, done.stderr) == (0, "task/x created\n", "")
    assert (await get_task(admin, ns, "x"))["spec"]["steps"][0]["name"] == "a"
    again = await ctl(kubeconfig, ns, "run", "-f", str(good))
    assert again.returncode == 1
    assert again.stderr.startswith("error: ")
    assert "already exists" in again.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"kind": "Task", "metadata": {"name": "y"}, "spec": {"steps": []}})
    )
    done = await ctl(kubeconfig, ns, "run", "-f", str(bad))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def crd_has_cancel() -> bool:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return "cancel" in spec.get("properties", {})


async def test_cancel(admin: Kube, ns: str, kubeconfig: str) -> None:
    await create_task(admin, ns, "long", steps("a", "b"))
    done = await ctl(kubeconfig, ns, "cancel", "long")
    if crd_has_cancel():
        assert (done.returncode, done.stdout) == (0, "task/long cancel requested\n"), done.stderr
        assert (await get_task(admin, ns, "long"))["spec"]["cancel"] is True
    else:  # a CRD older than spec.cancel: the API server prunes the field; said in one line
        assert done.returncode == 1
        assert done.stderr.startswith(
            "error: cannot cancel task/long: the cluster's Task CRD has no spec.cancel"
        )
        assert done.stderr.count("\n") == 1
        assert "cancel" not in (await get_task(admin, ns, "long"))["spec"]
    # a finished Task: nothing to cancel
    await admin.request(
        "PATCH",
        f"{TASKS.format(ns=ns)}/long/status",
        body=enc.encode({"status": {"status": "Successful"}}),
        content_type=MERGE,
    )
    done = await ctl(kubeconfig, ns, "cancel", "long")
    assert (done.returncode, done.stdout) == (0, "task/long already finished: Successful\n")


async def test_wait(admin: Kube, ns: str, kubeconfig: str) -> None:
    await create_task(admin, ns, "slow", steps("a"))
    done = await ctl(kubeconfig, ns, "wait", "slow", "--timeout", "2s")
    assert done.returncode == 1
    # (the state is named once the Task was read; another operator on a shared cluster may
    # have given it a pod: Pending 0/1)
    assert re.fullmatch(
        r"error: timed out after 2s waiting for task/slow( \(Pending[^)]*\))?\n", done.stderr
    ), done.stderr
    async with operator(kubeconfig, ns):
        ok = await create_task(admin, ns, "fine", steps("a"))
        bad = await create_task(admin, ns, "broken", steps("a"))
        async with (
            running(kubeconfig, ns, "wait", "fine") as w_ok,
            running(kubeconfig, ns, "wait", "broken", "--timeout", "1m") as w_bad,
        ):
            for task, code in ((ok, 0), (bad, 2)):
                pod = await the_pod(admin, ns, task["metadata"]["uid"])
                phase = "Succeeded" if code == 0 else "Failed"
                await kubelet(admin, pod, phase, {"a": ("terminated", code, 1, 2)})
            assert await wait_done(w_ok) == 0
            assert await wait_done(w_bad) == 1
            await w_ok.says("task/fine Successful in 1s\n", on="out")
            await w_bad.says(r"task/broken Failure \(StepFailed: .*\) after 1s\n", on="out")


async def test_describe_and_get(admin: Kube, ns: str, kubeconfig: str) -> None:
    async with operator(kubeconfig, ns):
        task = await create_task(admin, ns, "shown", steps("first", "second"))
        pod = await the_pod(admin, ns, task["metadata"]["uid"])
        await kubelet(
            admin,
            pod,
            "Running",
            {"first": ("terminated", 0, 1, 4), "second": ("running", 5)},
        )
        await status_is(admin, ns, "shown", status="Running", progress="2/2")
        got = await ctl(kubeconfig, ns, "get")
        assert got.returncode == 0, got.stderr
        header, row = lines(got.stdout)
        assert header.split() == ["NAME", "STATUS", "STEP", "STEPS", "DURATION", "AGE"]
        assert row.split()[:3] == ["shown", "Running", "2/2"]
        assert row.split()[3] in ("✓▸", "+>")  # ASCII when stdout cannot encode the signs
        desc = await ctl(kubeconfig, ns, "describe", "shown")
        assert desc.returncode == 0, desc.stderr
        text = desc.stdout
        assert "Status:      Running (2/2)" in text
        assert "Pod:         shown-pod" in text
        table = text[text.index("Steps:") : text.index("Condition:")]
        assert [ln.split()[:3] for ln in lines(table)[2:]] == [
            ["first", "Terminated", "0"],
            ["second", "Running", "2030-01-01"],
        ]
        events = text[text.index("Events:") :]
        for reason in ("PodCreated", "StepStarted", "StepSucceeded"):
            assert reason in events

        async with running(kubeconfig, ns, "get", "-w") as r:
            await r.says(r"shown\s+Running", on="out")
            await create_task(admin, ns, "later", steps("x"))
            await r.says(r"\nlater\s+Pending", on="out")
            await admin.request("DELETE", f"{TASKS.format(ns=ns)}/later")
            await r.says(r"\nlater\s+Deleted", on="out")
    empty = await ctl(kubeconfig, ns + "-none", "get")
    assert (empty.returncode, empty.stderr) == (0, f"No tasks found in {ns}-none namespace.\n")


async def test_unknown_task_and_no_permission_are_one_line(
    admin: Kube, ns: str, kubeconfig: str, tmp_path: Path
) -> None:
    for command in (
        ["logs", "nope"],
        ["logs", "-f", "nope"],
        ["describe", "nope"],
        ["wait", "nope"],
        ["cancel", "nope"],
        ["get", "nope"],
    ):
        done = await ctl(kubeconfig, ns, *command)
        assert done.returncode == 1, command
        assert done.stderr == f'error: task "nope" in namespace "{ns}" not found\n', command
    await create_task(admin, ns, "secret", steps("a"))
    nobody = await sa_kubeconfig(admin, kubeconfig, ns, "nobody", tmp_path / "nobody.kubeconfig")
    for command in (["get"], ["logs", "secret"], ["describe", "secret"], ["cancel", "secret"]):
        done = await ctl(nobody, ns, *command)
        assert done.returncode == 1, command
        assert done.stderr.startswith("error: forbidden: "), done.stderr
        assert "nobody" in done.stderr
        assert done.stderr.count("\n") == 1
