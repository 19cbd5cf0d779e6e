"""The pure parts of `nox -s chaos` (tests/chaos): what each Task deserves, the verdict over
what the cluster holds, the report, and the fault proxy against a loopback echo server."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from taskflow import labels
from tests.chaos import checks, report, workload
from tests.chaos.proxy import Proxy

# -- workload.expected ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "want"),
    [
        ("quick", workload.Expected("Successful", None, 1)),
        ("multi", workload.Expected("Successful", None, 1)),
        ("long", workload.Expected("Successful", None, 1)),
        ("fail", workload.Expected("Failure", "s2", 1)),
        ("retry", workload.Expected("Failure", "s1", 2)),  # fails again on its one retry
    ],
)
def test_expected_outcome(kind: str, want: workload.Expected) -> None:
    assert workload.expected(workload.task_doc("t", kind, 0)) == want


def test_expected_refuses_a_command_it_cannot_judge() -> None:
    doc = workload.task_doc("t", "quick", 0)
    doc["spec"]["steps"][0]["command"] = ["sh", "-c", "test -e /x"]
    with pytest.raises(ValueError, match="cannot tell"):
        workload.expected(doc)


def test_burst_is_a_fixed_mostly_quick_mix() -> None:
    docs = workload.burst(100)
    assert docs == workload.burst(100)
    kinds = Counter(d["metadata"]["labels"]["chaos.taskflow/kind"] for d in docs)
    assert kinds == {"quick": 68, "multi": 16, "fail": 8, "retry": 4, "long": 4}
    sleeps = [
        int(s["command"][2].split()[1])
        for d in docs
        for s in d["spec"]["steps"]
        if s["command"][2].startswith("sleep")
    ]
    assert min(sleeps) == 5
    assert max(sleeps) == 30
    assert {d["spec"]["executor"] for d in docs} == {"kubelet"}
    both = workload.burst(100, ("kubelet", "agent"))
    by = Counter(
        (d["metadata"]["labels"]["chaos.taskflow/kind"], d["spec"]["executor"]) for d in both
    )
    assert {kind for kind, _ in by} == set(kinds)
    assert all(by[k, "agent"] for k in kinds)


# -- checks.judge -----------------------------------------------------------------------------


def _finished(doc: dict[str, Any], uid: str, *, word: str | None = None) -> dict[str, Any]:
    """The Task as the operator should leave it."""
    want = workload.expected(doc)
    steps = []
    for step in doc["spec"]["steps"]:
        failed = step["name"] == want.failed_step
        steps.append({"name": step["name"], "state": "Terminated", "exitCode": 3 if failed else 0})
        if failed:
            break
    status = {"status": word or want.word, "steps": steps, "attempt": want.attempts}
    return {"metadata": {"name": doc["metadata"]["name"], "uid": uid}, "status": status}


def _pod(uid: str, attempt: int) -> dict[str, Any]:
    lab = {labels.TASK_UID_LABEL: uid, labels.ATTEMPT_LABEL: str(attempt)}
    return {"metadata": {"name": f"p-{uid}-{attempt}", "labels": lab}}


def _event(uid: str, reason: str, message: str, count: int = 1) -> dict[str, Any]:
    return {"involvedObject": {"uid": uid}, "reason": reason, "message": message, "count": count}


def _world() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    sent = [workload.task_doc(f"t{i}", k, i) for i, k in enumerate(["quick", "fail", "retry"])]
    tasks = [_finished(d, f"u{i}") for i, d in enumerate(sent)]
    pods = [_pod("u0", 1), _pod("u1", 1), _pod("u2", 1), _pod("u2", 2)]
    events = [_event("u0", "PodCreated", "a"), _event("u0", "Succeeded", "b")]
    return sent, tasks, pods, events  # type: ignore[return-value]


def test_judge_all_good() -> None:
    sent, tasks, pods, events = _world()  # type: ignore[misc]
    v = checks.judge(sent, tasks, pods, events)
    assert (v.tasks, v.lost, v.duplicated, v.wrong, v.problems) == (3, 0, 0, 0, [])


@pytest.mark.parametrize(
    ("change", "counts", "problem"),
    [
        (lambda t, p, e: t.pop(0), (1, 0, 0), "t0: gone"),
        (lambda t, p, e: t[0]["status"].update(status="Running"), (1, 0, 0), "t0: still Running"),
        (lambda t, p, e: t[0]["status"].update(status="Failure"), (0, 0, 1), "t0: Failure"),
        (
            lambda t, p, e: t[1]["status"]["steps"].__setitem__(
                1, {"name": "s2", "state": "Terminated", "exitCode": 0}
            ),
            (0, 0, 1),
            "t1: failed at None, want s2",
        ),
        (lambda t, p, e: t[2]["status"].update(attempt=1), (0, 0, 1), "t2: ended in attempt 1"),
        (lambda t, p, e: p.pop(0), (0, 0, 1), "t0: no pod for attempt 1"),
        (lambda t, p, e: p.append(_pod("u0", 1)), (0, 1, 0), "t0: 2 pods for attempt 1"),
        (lambda t, p, e: p.append(_pod("u1", 2)), (0, 1, 0), "t1: 1 pods for attempt 2"),
        (
            lambda t, p, e: e.append(_event("u0", "Succeeded", "b")),
            (0, 1, 0),
            "t0: Event Succeeded x2",
        ),
        (
            lambda t, p, e: e.append(_event("u1", "Failed", "c", 2)),
            (0, 1, 0),
            "t1: Event Failed count 2",
        ),
    ],
)
def test_judge_counts_each_fault(change: Any, counts: tuple[int, int, int], problem: str) -> None:
    sent, tasks, pods, events = _world()  # type: ignore[misc]
    change(tasks, pods, events)
    v = checks.judge(sent, tasks, pods, events)
    assert (v.lost, v.duplicated, v.wrong) == counts
    assert any(p.startswith(problem) for p in v.problems), v.problems


# -- report -----------------------------------------------------------------------------------


def test_report_table_and_verdict() -> None:
    good = report.Row("etcd-kill", checks.Verdict(tasks=100), 42.4, healthy=True)
    bad = report.Row("proxy", checks.Verdict(tasks=20, lost=1, wrong=2), None, healthy=False)
    assert report.table([good, bad]).splitlines() == [
        "| scenario  | Tasks | lost | duplicated | wrong status | converge s | healthy |",
        "| --------- | ----- | ---- | ---------- | ------------ | ---------- | ------- |",
        "| etcd-kill | 100   | 0    | 0          | 0            | 42         | yes     |",
        "| proxy     | 20    | 1    | 0          | 2            | -          | NO      |",
    ]
    assert report.summary([good]) == "chaos: 100 tasks, lost 0, duplicated 0, wrong 0"
    assert report.summary([good, bad]) == (
        "chaos: 120 tasks, lost 1, duplicated 0, wrong 2, unhealthy: proxy"
    )
    missed = report.Row("apf-429", checks.Verdict(tasks=20), 30.0, healthy=True, fault_hit=False)
    assert report.summary([good, missed]).endswith(", fault missed: apf-429")
    assert not report.passed([missed])
    assert report.passed([good])
    assert not report.passed([good, bad])
    assert not report.passed([])


# -- proxy ------------------------------------------------------------------------------------


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, within: float
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), within)


async def test_proxy_passes_cuts_and_blackholes() -> None:
    server = await _echo_server()
    proxy = Proxy("127.0.0.1", server.sockets[0].getsockname()[1])
    port = await proxy.start()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _roundtrip(r, w, b"hello", 5) == b"hello"

        assert proxy.cut() == 1
        assert await asyncio.wait_for(r.read(), 5) == b""  # reset: the client sees the end
        w.close()

        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _roundtrip(r, w, b"one", 5) == b"one"
        proxy.blackhole()
        with pytest.raises(TimeoutError):  # an open connection: nothing comes back
            await _roundtrip(r, w, b"two", 0.3)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)  # accepted, but silent
        with pytest.raises(TimeoutError):
            await _roundtrip(r2, w2, b"new", 0.3)
        proxy.heal()  # held, not lost: both answers arrive once the partition heals
        assert await asyncio.wait_for(r.readexactly(3), 5) == b"two"
        assert await asyncio.wait_for(r2.readexactly(3), 5) == b"new"
        for writer in (w, w2):
            writer.close()
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()
