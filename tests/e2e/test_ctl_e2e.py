"""``kubectl taskflow logs -f`` and ``run --follow`` on a real node (kubelet, containerd):
the steps' real output, live, in spec order, ending with the Task's result; and in a real
terminal (pty), the coloured prefixes.

The operator runs in-process (as in the integration tests) against the full cluster, scoped
to a namespace of this module; the CLI runs as a process, as a user runs it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
import pytest_asyncio
import yaml
from anyio.streams.text import TextReceiveStream

from taskflow.engine.kube import ApiError, Kube, connect
from tests.cluster.fixtures import FullCluster
from tests.integration.kube_sim import TASKS, dec, enc, eventually, install_crd, operator

pytestmark = pytest.mark.e2e

CTL = [sys.executable, "-c", "import sys, taskflow.ctl as c; sys.exit(c.main())"]
WITHIN = 120.0  # seconds for one Task from creation to its end (image pulls included)
IMAGE = "busybox:1.28"  # the harness's local stand-in

#: three steps: a prints, pauses (so the test sees its first line while it still runs),
#: prints again; b prints three lines and one on stderr; c prints and fails
THREE = [
    {"name": "a", "image": IMAGE, "command": ["sh", "-c", "echo a-1; sleep 4; echo a-2"]},
    {
        "name": "b",
        "image": IMAGE,
        "command": ["sh", "-c", "for i in 1 2 3; do echo b-$i; done; echo b-err >&2"],
    },
    {"name": "c", "image": IMAGE, "command": ["sh", "-c", "echo c-1; exit 3"]},
]
WANT_OUT = ["[a] a-1", "[a] a-2", "[b] b-1", "[b] b-2", "[b] b-3", "[b] b-err", "[c] c-1"]


@pytest_asyncio.fixture(scope="module")
async def admin(full_cluster: FullCluster) -> AsyncIterator[Kube]:
    kube = await connect(kubeconfig=full_cluster.kubeconfig)
    try:
        await install_crd(kube)
        yield kube
    finally:
        await kube.close()


@pytest_asyncio.fixture(scope="module")
async def ns(admin: Kube) -> AsyncIterator[str]:
    name = f"tf-ctl-e2e-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await admin.request("POST", "/api/v1/namespaces", body=enc.encode(body))
    yield name
    with suppress(ApiError):
        await admin.request("DELETE", f"/api/v1/namespaces/{name}")


def manifest(name: str, steps: list[dict[str, Any]], generate: bool = False) -> dict[str, Any]:
    meta = {"generateName": name} if generate else {"name": name}
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": meta,
        "spec": {"steps": steps},
    }


async def create(admin: Kube, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return dec(await admin.request("POST", TASKS.format(ns=ns), body=enc.encode(body)))


async def status_of(admin: Kube, ns: str, name: str) -> dict[str, Any]:
    obj = dec(await admin.request("GET", f"{TASKS.format(ns=ns)}/{name}"))
    st: dict[str, Any] = obj.get("status") or {}
    return st


async def final(admin: Kube, ns: str, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        st = await status_of(admin, ns, name)
        return st if st.get("status") in ("Successful", "Failure") else None

    result: dict[str, Any] = await eventually(check, within=WITHIN, interval=0.5)
    return result


class Proc:
    def __init__(self, proc: anyio.abc.Process) -> None:
        self.proc = proc
        self.out = ""
        self.err = ""

    async def collect(self, stream: anyio.abc.ByteReceiveStream, attr: str) -> None:
        async for text in TextReceiveStream(stream):
            setattr(self, attr, getattr(self, attr) + text)


async def run_ctl(
    kubeconfig: str, ns: str, *args: str, while_running: Any = None
) -> tuple[int, Proc]:
    """Run the CLI to its end; ``while_running(proc)`` (async) runs meanwhile."""
    argv = [*CTL, "--kubeconfig", kubeconfig, "-n", ns, *args]
    proc = await anyio.open_process(argv)
    p = Proc(proc)
    try:
        with anyio.fail_after(WITHIN + 30):
            async with anyio.create_task_group() as tg:
                assert proc.stdout is not None
                assert proc.stderr is not None
                tg.start_soon(p.collect, proc.stdout, "out")
                tg.start_soon(p.collect, proc.stderr, "err")
                if while_running is not None:
                    await while_running(p)
                code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, p


def without(lines: list[str], line: str) -> list[str]:
    return [ln for ln in lines if ln != line]


async def test_logs_follow_prints_every_line_live_in_spec_order_and_exits_with_the_result(
    admin: Kube, ns: str, full_cluster: FullCluster
) -> None:
    kubeconfig = full_cluster.kubeconfig
    seen_live: list[str] = []

    async def while_running(p: Proc) -> None:
        # a's first line arrives while a still runs (it sleeps 4 s before its second line)
        await eventually(lambda: "[a] a-1\n" in p.out, within=WITHIN, interval=0.05)
        steps = (await status_of(admin, ns, "live")).get("steps") or []
        seen_live.append(next((s["state"] for s in steps if s["name"] == "a"), "Waiting"))
        assert "[a] a-2" not in p.out

    async with operator(kubeconfig, ns):
        await create(admin, ns, manifest("live", THREE))
        code, p = await run_ctl(kubeconfig, ns, "logs", "-f", "live", while_running=while_running)
        st = await final(admin, ns, "live")
    assert st["status"] == "Failure"
    assert code == 1, p.err
    assert seen_live == ["Running"]
    out = p.out.splitlines()
    # stderr and stdout of one step are two pipes: b-err's place among b's lines may vary
    assert without(out, "[b] b-err") == without(WANT_OUT, "[b] b-err")
    assert sorted(out) == sorted(WANT_OUT)
    last = p.err.splitlines()[-1]
    assert re.fullmatch(r"task/live Failure \(StepFailed: .*c.*3.*\) after \d+s", last), p.err

    # the same Task, finished: the same lines, without -f too
    again = await anyio.run_process(
        [*CTL, "--kubeconfig", kubeconfig, "-n", ns, "logs", "live"], check=False
    )
    assert again.returncode == 1
    assert sorted(again.stdout.decode().splitlines()) == sorted(WANT_OUT)
    only_b = await anyio.run_process(
        [*CTL, "--kubeconfig", kubeconfig, "-n", ns, "logs", "live", "--step", "b", "--no-prefix"],
        check=False,
    )
    assert sorted(only_b.stdout.decode().splitlines()) == ["b-1", "b-2", "b-3", "b-err"]


async def test_run_follow_creates_streams_and_exits_0_on_success(
    admin: Kube, ns: str, full_cluster: FullCluster, tmp_path: Path
) -> None:
    steps: list[dict[str, Any]] = [
        {"name": "hello", "image": IMAGE, "command": ["sh", "-c", "echo hello"]},
        {"name": "world", "image": IMAGE, "script": "echo world\n"},
    ]
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(manifest("ci-", steps, generate=True)))
    async with operator(full_cluster.kubeconfig, ns):
        code, p = await run_ctl(full_cluster.kubeconfig, ns, "run", "-f", str(path), "--follow")
    assert code == 0, p.err
    first, *rest = p.out.splitlines()
    name = re.fullmatch(r"task/(ci-\w+) created", first)
    assert name is not None, p.out
    assert rest == ["[hello] hello", "[world] world"]
    assert re.fullmatch(rf"task/{name.group(1)} Successful in \d+s", p.err.splitlines()[-1])


async def test_pod_deleted_mid_stream_ends_with_the_tasks_failure(
    admin: Kube, ns: str, full_cluster: FullCluster
) -> None:
    steps = [{"name": "x", "image": IMAGE, "command": ["sh", "-c", "echo x-1; sleep 300"]}]

    async def delete_pod_once_streaming(p: Proc) -> None:
        await eventually(lambda: "[x] x-1\n" in p.out, within=WITHIN, interval=0.05)
        await admin.request(
            "DELETE",
            f"/api/v1/namespaces/{ns}/pods/doomed-pod",
            body=enc.encode({"gracePeriodSeconds": 0}),
        )

    async with operator(full_cluster.kubeconfig, ns):
        await create(admin, ns, manifest("doomed", steps))
        code, p = await run_ctl(
            full_cluster.kubeconfig,
            ns,
            "logs",
            "-f",
            "doomed",
            while_running=delete_pod_once_streaming,
        )
    assert code == 1
    assert p.out == "[x] x-1\n"
    assert "PodDeleted" in p.err.splitlines()[-1], p.err


def in_pty(argv: list[str], env: dict[str, str], within: float = 60) -> tuple[int, str]:
    """Run ``argv`` with a pty as its terminal (stdout and stderr); its exit code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + within
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no end within {within}s: {b''.join(chunks)!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


@pytest_asyncio.fixture(scope="module")
async def finished(admin: Kube, ns: str, full_cluster: FullCluster) -> str:
    """A finished three-step Task (Failure at c)."""
    async with operator(full_cluster.kubeconfig, ns):
        await create(admin, ns, manifest("done", THREE))
        await final(admin, ns, "done")
    return "done"


def test_terminal_gets_coloured_prefixes_and_summary(
    finished: str, ns: str, full_cluster: FullCluster
) -> None:
    argv = [*CTL, "--kubeconfig", full_cluster.kubeconfig, "-n", ns, "logs", "-f", finished]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    code, text = in_pty(argv, env)
    assert code == 1
    assert "\x1b[36m[a]\x1b[0m a-1\n" in text
    assert "\x1b[35m[b]\x1b[0m b-1\n" in text
    assert "\x1b[34m[c]\x1b[0m c-1\n" in text
    assert "\x1b[31;1mFailure\x1b[0m" in text

    code, plain = in_pty(argv, {**env, "NO_COLOR": "1"})
    assert code == 1
    assert "\x1b[" not in plain
    assert "[a] a-1\n" in plain

    code, stamped = in_pty([*argv, "--timestamps", "--no-prefix"], {**env, "NO_COLOR": "1"})
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z a-1$", stamped, re.MULTILINE)


def test_a_pipe_gets_no_colour(finished: str, ns: str, full_cluster: FullCluster) -> None:
    argv = [*CTL, "--kubeconfig", full_cluster.kubeconfig, "-n", ns, "logs", finished]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert "\x1b[" not in done.stdout + done.stderr
    assert "[a] a-1" in done.stdout
