"""Reflector logic without I/O: a scripted fake API client drives LIST/WATCH."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import msgspec
import pytest

from taskflow.api import decode_pod
from taskflow.engine.cache import Cache, PodHandler
from taskflow.engine.kube import ApiError
from taskflow.engine.ratelimit import ExponentialBackoff
from taskflow.engine.resources import PODS, TASKS
from taskflow.engine.watch import (
    Gone,
    Reflector,
    StreamFailed,
    WatchError,
    decode_watch_line,
    resource_version_of,
)
from taskflow.labels import TASK_UID_LABEL


class Stop(BaseException):
    """Ends a reflector's run loop from inside the fake."""


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": rv}}


def page(items: list[dict[str, Any]], rv: str, cont: str = "") -> bytes:
    meta: dict[str, str] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return json.dumps({"kind": "List", "metadata": meta, "items": items}).encode()


def ev(kind: str, o: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": o}).encode() + b"\n"


def bookmark(rv: str) -> bytes:
    return ev("BOOKMARK", {"metadata": {"resourceVersion": rv}})


def error_event(code: int, message: str = "too old resource version") -> bytes:
    status = {"kind": "Status", "status": "Failure", "code": code, "reason": "Expired"}
    status["message"] = message
    return ev("ERROR", status)


#: a watch line, an error raised after connecting, or a side effect run at that point
Line = bytes | BaseException | Callable[[], object]


class FakeClient:
    """``lists``: responses to successive LIST pages; ``watches``: successive WATCH answers
    (a list of lines, or an exception to raise when connecting)."""

    def __init__(self, lists: list[bytes | Exception], watches: list[list[Line] | Exception]):
        self.lists = list(lists)
        self.watches = list(watches)
        self.list_queries: list[dict[str, Any]] = []
        self.watch_queries: list[dict[str, Any]] = []
        self.read_timeouts: list[float] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        request_timeout: float = 30.0,
    ) -> bytes:
        assert method == "GET"
        self.list_queries.append(dict(query or {}))
        if not self.lists:
            raise Stop
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        read_timeout: float,
        connect_timeout: float = 15.0,
    ) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        self.watch_queries.append(dict(query or {}))
        self.read_timeouts.append(read_timeout)
        return self._stream()

    @asynccontextmanager
    async def _stream(self) -> AsyncIterator[AsyncIterable[bytes]]:
        if not self.watches:
            raise Stop
        answer = self.watches.pop(0)
        if isinstance(answer, Exception):
            raise answer

        async def lines() -> AsyncIterator[bytes]:
            for line in answer:
                if isinstance(line, BaseException):
                    raise line
                if callable(line):  # something that happens meanwhile (a write-through)
                    line()
                    continue
                yield line

        yield lines()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def replace(
        self, namespace: str | None, items: list[msgspec.Raw], resource_version: str = ""
    ) -> None:
        names = [json.loads(bytes(i))["metadata"]["name"] for i in items]
        self.calls.append(("replace", names))

    def apply(self, event_type: str, raw: msgspec.Raw) -> None:
        self.calls.append((event_type, json.loads(bytes(raw))["metadata"]["name"]))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def reflector(client: FakeClient, handler: Recorder, t: FakeTime, **kw: Any) -> Reflector:
    return Reflector(
        client,
        PODS,
        handler,
        label_selector="app.kubernetes.io/managed-by=taskflow",
        clock=t.clock,
        sleep=t.sleep,
        rand=lambda a, b: 300,
        backoff=ExponentialBackoff(1.0, 8.0, jitter=0.0),
        **kw,
    )


async def run_until_stop(r: Reflector) -> None:
    with pytest.raises(Stop):
        await r.run()


def test_paths() -> None:
    assert PODS.collection(None) == "/api/v1/pods"
    assert PODS.collection("ns1") == "/api/v1/namespaces/ns1/pods"
    assert TASKS.collection(None) == "/apis/api.practice.com/v1alpha1/tasks"
    assert (
        TASKS.item("a", "t", "status")
        == "/apis/api.practice.com/v1alpha1/namespaces/a/tasks/t/status"
    )


def test_decode_watch_line() -> None:
    e = decode_watch_line(ev("ADDED", obj("a", "5")))
    assert e.type == "ADDED"
    assert resource_version_of(e.object) == "5"
    with pytest.raises(Gone, match="too old"):
        decode_watch_line(error_event(410))
    with pytest.raises(WatchError, match="500"):
        decode_watch_line(error_event(500, "internal"))
    with pytest.raises(msgspec.DecodeError):
        decode_watch_line(b"{not json")


async def test_paginated_list_then_watch_from_its_resource_version() -> None:
    client = FakeClient(
        lists=[page([obj("a", "3")], "10", cont="tok"), page([obj("b", "4")], "10")],
        watches=[
            [
                ev("ADDED", obj("c", "11")),
                ev("MODIFIED", obj("a", "12")),
                b"\n",
                ev("BOOKMARK", {"metadata": {"resourceVersion": "15"}}),
                ev("DELETED", obj("b", "16")),
            ],
            [ev("ADDED", obj("d", "17"))],
        ],
    )
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t, page_size=1)
    await run_until_stop(r)
    assert h.calls == [
        ("replace", ["a", "b"]),
        ("ADDED", "c"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
        ("ADDED", "d"),
    ]
    assert client.list_queries[0] == {
        "labelSelector": "app.kubernetes.io/managed-by=taskflow",
        "limit": 1,
    }
    assert client.list_queries[1]["continue"] == "tok"
    w0, w1 = client.watch_queries[:2]
    assert w0["resourceVersion"] == "10"
    assert w0["watch"] == "true"
    assert w0["allowWatchBookmarks"] == "true"
    assert w0["timeoutSeconds"] == 300
    assert w0["labelSelector"] == "app.kubernetes.io/managed-by=taskflow"
    # a normal end of the stream: watch again from the last RV seen, no relist, no backoff
    assert w1["resourceVersion"] == "16"
    assert client.read_timeouts[0] == 330
    assert r.relists == 1
    assert r.synced.is_set()
    assert t.sleeps == []
    assert r.resource_version == "17"


async def test_410_error_event_relists() -> None:
    client = FakeClient(
        lists=[page([obj("a", "3")], "10"), page([obj("a", "20"), obj("b", "21")], "22")],
        watches=[[ev("ADDED", obj("x", "11")), error_event(410)], [bookmark("22")]],
    )
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t)
    await run_until_stop(r)
    assert h.calls == [("replace", ["a"]), ("ADDED", "x"), ("replace", ["a", "b"])]
    assert [q["resourceVersion"] for q in client.watch_queries] == ["10", "22", "22"]
    assert r.relists == 2
    assert t.sleeps == []  # a single 410 relists at once


async def test_410_http_status_on_watch_and_expired_continue_token_relist() -> None:
    gone = ApiError(410, b'{"kind":"Status","code":410,"reason":"Expired","message":"gone"}')
    client = FakeClient(
        lists=[page([obj("a", "3")], "10"), page([], "30", cont="t"), gone, page([], "31")],
        watches=[gone, [bookmark("31")]],
    )
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t)
    await run_until_stop(r)
    assert h.calls == [("replace", ["a"]), ("replace", [])]
    assert [q["resourceVersion"] for q in client.watch_queries] == ["10", "31", "31"]
    assert len(t.sleeps) == 1  # the second 410 in a row backs off


async def test_errors_back_off_exponentially_and_recover() -> None:
    boom = ApiError(500, b'{"message":"etcd unavailable"}')
    client = FakeClient(
        lists=[boom, OSError("connection refused"), page([obj("a", "1")], "5")],
        watches=[TimeoutError(), [ev("ADDED", obj("b", "6"))], boom, [bookmark("7")]],
    )
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t, failure_threshold=100.0)
    await run_until_stop(r)
    # list failed twice (1s, 2s), then the watch connect timed out (4s); a good watch resets;
    # the next failure starts again at 1s
    assert t.sleeps == [1.0, 2.0, 4.0, 1.0]
    assert r.errors == 4
    assert r.healthy()
    assert h.calls == [("replace", ["a"]), ("ADDED", "b")]


async def test_stream_failing_past_threshold_raises_and_turns_unhealthy() -> None:
    boom = ApiError(403, b'{"message":"pods is forbidden"}')
    client = FakeClient(lists=[boom] * 50, watches=[])
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t, failure_threshold=20.0)
    with pytest.raises(StreamFailed, match="forbidden"):
        await r.run()
    assert not r.healthy()
    assert not r.synced.is_set()
    assert t.now >= 20.0
    assert sum(t.sleeps) < 20.0 + 8.0


async def test_a_missing_crd_is_named_in_the_error() -> None:
    missing = ApiError(404, b'{"message":"the server could not find the requested resource"}')
    client = FakeClient(lists=[missing] * 50, watches=[])
    t = FakeTime()
    r = Reflector(client, TASKS, Recorder(), clock=t.clock, sleep=t.sleep, failure_threshold=5.0)
    with pytest.raises(StreamFailed, match=r"is the CRD tasks\.api\.practice\.com installed"):
        await r.run()


async def test_start_resource_version_skips_initial_list() -> None:
    client = FakeClient(lists=[page([], "100")], watches=[[error_event(410)], []])
    h, t = Recorder(), FakeTime()
    r = reflector(client, h, t, start_resource_version="1")
    assert not r.synced.is_set()
    await run_until_stop(r)
    assert [q["resourceVersion"] for q in client.watch_queries] == ["1", "100", "100"]
    assert r.relists == 1
    assert r.synced.is_set()


# -- regressions ------------------------------------------------------------------------------


def pod_obj(name: str, rv: str) -> dict[str, Any]:
    """A pod the cache accepts (labelled with its Task's UID ``t-<name>``)."""
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {TASK_UID_LABEL: f"t-{name}"},
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


async def test_relist_keeps_a_pod_written_through_after_its_snapshot() -> None:
    # The pod "new" is created (and written through) at rv 25 while the watch is down; the
    # relist's snapshot was taken at rv 20, before it existed. The pod "old" (rv 15) is
    # gone from the snapshot: deleted meanwhile, so it goes (and stays gone).
    cache = Cache()
    handler = PodHandler(cache)

    def write_through() -> None:
        assert cache.put_pod(decode_pod(pod_obj("new", "25")))
        assert cache.put_pod(decode_pod(pod_obj("old", "15")))

    client = FakeClient(
        lists=[page([], "10"), page([], "20")],
        watches=[[write_through, error_event(410)], []],
    )
    await run_until_stop(reflector(client, cast(Recorder, handler), FakeTime()))
    assert cache.pod_for("t-new") is not None
    assert cache.pod_for("t-old") is None
    # a late write-through of the dropped pod (older than the snapshot) is refused
    assert not cache.put_pod(decode_pod(pod_obj("old", "16")))
    assert cache.pod_for("t-old") is None


async def test_a_stream_that_connects_then_fails_every_time_turns_unhealthy() -> None:
    # Each watch connects (HTTP 200) and then breaks before any event: the stream has not
    # worked since its LIST, however often it connects.
    client = FakeClient(
        lists=[page([obj("a", "1")], "5")],
        watches=[[OSError("connection reset by peer")] for _ in range(100)],
    )
    t = FakeTime()
    r = reflector(client, Recorder(), t, failure_threshold=30.0)
    with pytest.raises(StreamFailed, match="connection reset"):
        await r.run()
    assert not r.healthy()
    assert 30.0 <= t.now < 30.0 + 8.0


async def test_health_counts_from_the_last_event_or_bookmark() -> None:
    boom = OSError("connection reset by peer")
    client = FakeClient(
        lists=[page([], "5")],
        watches=[
            [boom],
            [boom],
            [ev("BOOKMARK", {"metadata": {"resourceVersion": "9"}}), boom],
            [boom],
        ],
    )
    t = FakeTime()
    r = reflector(client, Recorder(), t, failure_threshold=100.0)
    await run_until_stop(r)
    # the bookmark (at t=3, after two failures) was the last good news: failing since the
    # failure right after it, not since the last connect (t=7)
    assert r.failing_since == 3.0
    assert t.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_a_watch_closed_at_once_without_an_event_backs_off() -> None:
    # A server (or proxy) that answers 200 and closes at once must not make a hot loop.
    client = FakeClient(lists=[page([], "5")], watches=[[] for _ in range(4)])
    t = FakeTime()
    r = reflector(client, Recorder(), t, failure_threshold=100.0)
    await run_until_stop(r)
    assert t.sleeps == [1.0, 2.0, 4.0, 8.0]
