"""``kubectl taskflow logs`` without a cluster: the loop that follows :mod:`._follow`'s
decisions, with the log reads played by a stand-in (what each step's stream prints and how
it ends)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import anyio
import pytest

from taskflow.ctl import _follow as fsm
from taskflow.ctl import _logs
from taskflow.ctl._client import Client
from taskflow.ctl._model import TaskView, decode_task


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
