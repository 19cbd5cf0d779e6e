"""``kubectl taskflow logs`` without a cluster: the loop that follows :mod:`._follow`'s
decisions, with the log reads played by a stand-in (what each step's stream prints and how
it ends); ``--sidecar``, with the API server's log endpoint played by one."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from taskflow import ctl
from taskflow.ctl import _follow as fsm
from taskflow.ctl import _logs
from taskflow.ctl._client import Client, CtlError
from taskflow.ctl._commands import LogFlags, Streams, cmd_logs
from taskflow.ctl._model import TaskView, decode_task
from taskflow.engine.kube import ApiError


class _OneTask:
    def __init__(self, view: TaskView) -> None:
        self.view = view

    async def first_task(self, name: str) -> TaskView:
        return self.view


def _finished(word: str, exit_codes: tuple[int, ...]) -> TaskView:
    steps = [
        {"name": n, "state": "Terminated", "exitCode": c}
        for n, c in zip(("a", "b", "c"), exit_codes, strict=False)
    ]
    return decode_task(
        {
            "metadata": {"name": "t", "namespace": "ns"},
            "spec": {"steps": [{"name": n, "image": "busybox"} for n in ("a", "b", "c")]},
            "status": {"status": word, "podName": "t-pod", "steps": steps},
        }
    )


def _run(
    view: TaskView, endings: dict[str, fsm.Ended], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    async def read_log(
        client: Client,
        pod: str,
        step: str,
        *,
        follow: bool,
        timestamps: bool,
        emit: Callable[[list[str]], None],
        what: str = "step",
    ) -> tuple[fsm.Ended, str]:
        assert (pod, follow) == ("t-pod", False)
        emit([f"{step} says hi"])
        return endings.get(step, fsm.Ended.DRAINED), "no such container"

    monkeypatch.setattr(_logs, "read_log", read_log)
    out, err = io.StringIO(), io.StringIO()
    o = _logs.Output(out, err, colour=False, err_colour=False)
    client = cast(Client, _OneTask(view))

    async def main() -> int:
        return await _logs.show_logs(client, "t", fsm.Options(follow=False), o)

    return anyio.run(main), out.getvalue(), err.getvalue()


def test_every_step_in_order_then_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(_finished("Successful", (0, 0, 0)), {}, monkeypatch)
    assert code == 0
    assert out.splitlines() == ["[a] a says hi", "[b] b says hi", "[c] c says hi"]
    assert err.splitlines()[-1].startswith("task/t Successful")


def test_a_step_without_log_is_noted_and_the_rest_still_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _run(_finished("Failure", (0, 1)), {"a": fsm.Ended.NO_LOG}, monkeypatch)
    assert code == 1
    assert "step a has no log: no such container" in err
    assert err.splitlines()[-1].startswith("task/t Failure")
    assert "[b] b says hi" in out.splitlines()


# -- --sidecar: the request read_log makes, played by a stand-in API server -----------------


class _Body:
    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


class _Kube:
    """Records each log request (path, query, read timeout); answers ``chunks`` or raises
    ``error``."""

    def __init__(self, error: ApiError | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, str | int], float | None]] = []

    @asynccontextmanager
    async def stream(
        self, path: str, *, query: dict[str, str | int], read_timeout: float | None
    ) -> AsyncIterator[_Body]:
        self.calls.append((path, dict(query), read_timeout))
        if self.error is not None:
            raise self.error
        yield _Body((b"db up\nready", b"\n"))


class _Versions:
    """A Task that goes through ``versions`` (``first_task`` is the first)."""

    namespace = "ns"

    def __init__(self, *versions: TaskView, kube: _Kube) -> None:
        self.versions = versions
        self.kube = kube

    async def first_task(self, name: str) -> TaskView:
        return self.versions[0]

    async def task_changes(self, name: str) -> AsyncIterator[TaskView]:
        for v in self.versions:
            yield v
            await anyio.lowlevel.checkpoint()  # the follower sees each version, as in a watch


def _sidecar_task(
    word: str = "Running",
    pod: str | None = "t-pod",
    sidecars: tuple[dict[str, Any], ...] = ({"name": "db", "state": "Running", "ready": True},),
    **status: Any,
) -> TaskView:
    return decode_task(
        {
            "metadata": {"name": "t", "namespace": "ns"},
            "spec": {
                "steps": [{"name": "a", "image": "busybox"}],
                "sidecars": [{"name": c["name"], "image": "redis"} for c in sidecars],
            },
            "status": {
                "status": word,
                **({"podName": pod} if pod else {}),
                "steps": [{"name": "a", "state": "Running"}],
                "sidecars": [c for c in sidecars if "state" in c],
                **status,
            },
        }
    )


def _sidecar_logs(
    *versions: TaskView,
    follow: bool = False,
    timestamps: bool = False,
    attempt: int | None = None,
    kube: _Kube | None = None,
) -> tuple[int, str, str, _Kube]:
    kube = kube or _Kube()
    client = cast(Client, _Versions(*versions, kube=kube))
    out, err = io.StringIO(), io.StringIO()
    flags = LogFlags(follow=follow, sidecar="db", attempt=attempt, timestamps=timestamps)
    streams = Streams(out, err, out_colour=False, err_colour=False)

    async def main() -> int:
        return await cmd_logs(client, "t", flags, streams)

    return anyio.run(main), out.getvalue(), err.getvalue(), kube


PATH = "/api/v1/namespaces/ns/pods/t-pod/log"
CRASHED = {"name": "db", "state": "Waiting", "restarts": 2, "reason": "CrashLoopBackOff"}
STOPPED = {"name": "db", "state": "Terminated", "exitCode": 0, "reason": "Completed"}


@pytest.mark.parametrize(
    ("task", "follow", "timestamps", "query", "read_timeout"),
    [
        (_sidecar_task(), False, False, {"container": "db"}, _logs.READ_TIMEOUT),
        (_sidecar_task(), True, False, {"container": "db", "follow": "true"}, None),
        (
            _sidecar_task(),
            True,
            True,
            {"container": "db", "follow": "true", "timestamps": "true"},
            None,
        ),
        # stopped after the last step: read, not followed
        (
            _sidecar_task("Successful", sidecars=(STOPPED,)),
            True,
            False,
            {"container": "db"},
            _logs.READ_TIMEOUT,
        ),
        # waiting to be restarted: its last run's log, not followed
        (_sidecar_task(sidecars=(CRASHED,)), True, False, {"container": "db"}, _logs.READ_TIMEOUT),
    ],
)
def test_sidecar_log_request(
    task: TaskView,
    follow: bool,
    timestamps: bool,
    query: dict[str, str],
    read_timeout: float | None,
) -> None:
    code, out, err, kube = _sidecar_logs(task, follow=follow, timestamps=timestamps)
    assert (code, err) == (0, "")
    assert kube.calls == [(PATH, query, read_timeout)]
    assert out.splitlines() == ["[db] db up", "[db] ready"]


CACHE = {"name": "cache", "state": "Running", "ready": True}
PULLING = {"name": "db", "state": "Waiting", "reason": "ErrImagePull", "message": "not found"}


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (
            _sidecar_task(sidecars=(CACHE,)),
            "task/t has no sidecar 'db' (sidecars: cache)",
        ),
        (_sidecar_task(sidecars=()), "task/t has no sidecar 'db' (it has no sidecars)"),
        (
            _sidecar_task(sidecars=(PULLING,)),
            "sidecar db of task/t has not started yet (ErrImagePull: not found)",
        ),
        (
            _sidecar_task("Failure", sidecars=(PULLING,)),
            "sidecar db of task/t never started (ErrImagePull: not found)",
        ),
        (
            _sidecar_task("Pending", pod=None, sidecars=({"name": "db"},)),
            "sidecar db of task/t has not started yet",
        ),
        (_sidecar_task(attempt=1), "task/t has no attempt 2 (now 1)"),
    ],
)
def test_sidecar_log_refused(task: TaskView, error: str) -> None:
    attempt = 2 if task.status.attempt else None
    with pytest.raises(CtlError) as exc:
        _sidecar_logs(task, attempt=attempt)
    assert str(exc.value) == error


def test_an_unknown_sidecar_lists_them_all_with_follow_too() -> None:
    with pytest.raises(BaseExceptionGroup) as group:
        _sidecar_logs(_sidecar_task(sidecars=(CACHE, {"name": "proxy"})), follow=True)
    (exc,) = group.value.exceptions
    assert str(exc) == "task/t has no sidecar 'db' (sidecars: cache, proxy)"


def test_sidecar_log_follow_waits_for_the_pod_and_the_sidecar() -> None:
    code, out, err, kube = _sidecar_logs(
        _sidecar_task("Pending", pod=None, sidecars=({"name": "db"},)),
        _sidecar_task("Pending", sidecars=(PULLING,)),
        _sidecar_task(),
        follow=True,
    )
    assert code == 0
    assert err.splitlines() == [
        "waiting for the pod of task/t",
        "waiting for sidecar db to start (ErrImagePull: not found)",
    ]
    assert kube.calls == [(PATH, {"container": "db", "follow": "true"}, None)]
    assert out.splitlines() == ["[db] db up", "[db] ready"]


def test_sidecar_log_of_an_earlier_attempt_reads_its_pod() -> None:
    task = _sidecar_task(
        attempt=2,
        attempts=[{"attempt": 1, "podName": "t-pod-1", "reason": "StepFailed"}],
    )
    code, _, _, kube = _sidecar_logs(task, follow=True, attempt=1)
    assert code == 0
    # that pod has ended: read, not followed
    assert kube.calls == [
        (PATH.replace("t-pod", "t-pod-1"), {"container": "db"}, _logs.READ_TIMEOUT)
    ]


@pytest.mark.parametrize(
    ("error", "note"),
    [
        (
            ApiError(400, b'{"message": "container \\"db\\" is waiting to start"}'),
            'sidecar db has no log: container "db" is waiting to start',
        ),
        (
            ApiError(404, b'{"details": {"kind": "pods", "name": "t-pod"}}'),
            "pod t-pod is gone: the log of sidecar db is lost",
        ),
    ],
)
def test_sidecar_without_log_is_noted_and_fails(error: ApiError, note: str) -> None:
    code, out, err, _ = _sidecar_logs(_sidecar_task(), kube=_Kube(error))
    assert (code, out, err) == (1, "", note + "\n")


@pytest.mark.parametrize(
    ("argv", "sidecar", "step"),
    [
        (["logs", "t", "--sidecar", "db"], "db", None),
        (["logs", "-f", "t", "--sidecar", "db", "--attempt", "2"], "db", None),
        (["logs", "t", "--step", "a"], None, "a"),
    ],
)
def test_logs_sidecar_or_step(argv: list[str], sidecar: str | None, step: str | None) -> None:
    args = ctl.build_parser().parse_args(argv)
    assert (args.sidecar, args.step) == (sidecar, step)


def test_logs_sidecar_and_step_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        ctl.build_parser().parse_args(["logs", "t", "--step", "a", "--sidecar", "db"])
    assert exit_.value.code == 2
    assert "argument --sidecar: not allowed with argument --step" in capsys.readouterr().err
