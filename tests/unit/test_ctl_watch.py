"""``kubectl taskflow``'s watch of Tasks (``Client.watch_tasks``) against a scripted fake
API server: LIST, then WATCH from its resourceVersion, resumed after bookmarks and a normal
end, a fresh LIST after a 410 (in the stream or as the answer), anything else one error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import pytest

from taskflow.ctl._client import Client, CtlError
from taskflow.engine.kube import ApiError, Kube


class Stop(BaseException):
    """The script is over: ends the watch from inside the fake."""


def task(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def listing(rv: str, *items: dict[str, Any]) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": rv}, "items": list(items)}).encode()


def ev(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def error(code: int, message: str) -> bytes:
    return ev("ERROR", {"kind": "Status", "code": code, "reason": "R", "message": message})


class FakeKube:
    host = "https://127.0.0.1:6443"

    def __init__(self, lists: list[bytes], watches: list[list[bytes] | Exception]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_queries: list[dict[str, Any]] = []
        self.watch_queries: list[dict[str, Any]] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        assert (method, path) == ("GET", "/apis/api.practice.com/v1alpha1/namespaces/ns/tasks")
        self.list_queries.append(dict(query or {}))
        if not self.lists:
            raise Stop
        return self.lists.pop(0)

    def stream(
        self, path: str, *, query: Mapping[str, str | int] | None = None, read_timeout: float
    ) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        self.watch_queries.append(dict(query or {}))
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
                yield line

        yield lines()


async def collect(kube: FakeKube, seen: list[tuple[str, str]], name: str | None = None) -> None:
    """Appends (type, name) of every event to ``seen`` until the watch raises."""
    async for kind, obj in Client(cast(Kube, kube), "ns").watch_tasks(name):
        seen.append((kind, (obj.get("metadata") or {}).get("name", "")))


async def events(kube: FakeKube, name: str | None = None) -> list[tuple[str, str]]:
    """(type, name) of every event until the script ends."""
    seen: list[tuple[str, str]] = []
    with pytest.raises(Stop):
        await collect(kube, seen, name)
    return seen


async def test_list_then_watch_resumed_after_bookmarks_and_410s() -> None:
    kube = FakeKube(
        lists=[listing("10", task("a", "9")), listing("20", task("b", "19"))],
        watches=[
            [ev("MODIFIED", task("a", "11")), ev("BOOKMARK", task("", "12"))],  # ends normally
            [ev("ADDED", task("b", "13")), error(410, "too old resource version")],
            [],  # ends at once: watched again from the same version
            ApiError(410, b'{"kind":"Status","code":410,"reason":"Expired"}'),
        ],
    )
    assert await events(kube) == [
        ("ADDED", "a"),
        ("SYNCED", ""),
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("ADDED", "b"),  # the second LIST, after the ERROR 410
        ("SYNCED", ""),
    ]
    assert [q["resourceVersion"] for q in kube.watch_queries] == ["10", "12", "20", "20"]
    assert all(q["allowWatchBookmarks"] == "true" for q in kube.watch_queries)
    assert len(kube.list_queries) == 3  # after the 410 answer too (then the script ends)


async def test_one_task_by_name() -> None:
    kube = FakeKube(lists=[listing("5", task("a", "4"))], watches=[[ev("DELETED", task("a", "6"))]])
    assert await events(kube, "a") == [("ADDED", "a"), ("SYNCED", ""), ("DELETED", "a")]
    assert kube.list_queries[0] == {"fieldSelector": "metadata.name=a"}
    assert kube.watch_queries[0]["fieldSelector"] == "metadata.name=a"


async def test_a_missing_task_is_an_error() -> None:
    kube = FakeKube(lists=[listing("5")], watches=[])
    with pytest.raises(CtlError, match='task "a" in namespace "ns" not found'):
        async for _ in Client(cast(Kube, kube), "ns").watch_tasks("a"):
            pass


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([error(500, "etcd is sad")], "etcd is sad"),
        (ApiError(403, b'{"kind":"Status","code":403,"message":"no"}'), "forbidden: no"),
        (OSError("connection refused"), "cannot reach the cluster at https://127.0.0.1:6443"),
    ],
)
async def test_other_watch_failures_end_it(answer: list[bytes] | Exception, message: str) -> None:
    kube = FakeKube(lists=[listing("5")], watches=[answer])
    seen: list[tuple[str, str]] = []
    with pytest.raises(CtlError, match=message):
        await collect(kube, seen)
    assert seen == [("SYNCED", "")]


async def test_blank_lines_between_events_are_skipped() -> None:
    kube = FakeKube(lists=[listing("5")], watches=[[b"\n", ev("ADDED", task("a", "6")), b"\n"]])
    assert await events(kube) == [("SYNCED", ""), ("ADDED", "a")]
