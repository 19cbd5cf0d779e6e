"""Status of agent pods: the steps come from the agent's termination messages (docs/agent.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from taskflow.api import Task, decode_pod
from taskflow.api.pod import Pod
from taskflow.api.task import INSTALL_CONTAINER, ResultValue
from taskflow.render import render_pod
from taskflow.settings import Settings
from taskflow.status import compute_status
from taskflow.status._agent import decode_state, is_agent_pod
from tests.unit.builders import SETTINGS, T0, at, running, step, task, terminated, waiting

AGENT = Settings(default_executor="agent", default_timeout=0)


def ms(seconds: float) -> str:
    """The agent's timestamp of T0 + seconds (UTC, milliseconds)."""
    t = T0 + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def state(
    name: str,
    code: int = 0,
    started: float | None = 1.0,
    finished: float | None = 2.0,
    *,
    skipped: bool = False,
    timed_out: bool = False,
    abort: bool | None = None,
    error: str | None = None,
    results: tuple[tuple[str, str], ...] = (),
) -> str:
    failed = code != 0 or timed_out or error is not None
    return json.dumps(
        {
            "v": 1,
            "name": name,
            "exitCode": code,
            "startedAt": None if skipped else ms(started or 0),
            "finishedAt": None if skipped else ms(finished or 0),
            "skipped": skipped,
            "timedOut": timed_out,
            "abort": (skipped or failed) if abort is None else abort,
            "error": error,
            "results": [{"name": n, "value": v} for n, v in results],
        },
        separators=(",", ":"),
    )


def done(name: str, code: int, message: str, started: float = 1, finished: float = 2) -> Any:
    """A step container the agent left: its exit code and the state as the message."""
    return terminated(name, code, started, finished, message=message)


def agent_pod(t: Task, install: Any, mains: list[Any], phase: str = "Running") -> Pod:
    rendered = render_pod(t, AGENT)
    assert rendered["metadata"]["labels"]["api.practice.com/executor"] == "agent"
    obj = {
        **rendered,
        "metadata": {**rendered["metadata"], "uid": "pod-uid", "creationTimestamp": ms(-1)},
        "status": {
            "phase": phase,
            "startTime": ms(0),
            "initContainerStatuses": [install] if install is not None else [],
            "containerStatuses": mains,
        },
    }
    obj["spec"]["nodeName"] = "node-1"
    return decode_pod(obj)


INSTALLED = terminated(INSTALL_CONTAINER, 0, 0, 0.5)
ABC = task(
    step("a", command=["make"], results=[{"name": "digest"}]),
    step("b", command=["test"], onError="continue"),
    step("c", command=["deploy", "$(steps.a.results.digest)"], timeout="1s"),
    executor="agent",
)


def _status(t: Task, p: Pod, now: float = 100) -> Any:
    return compute_status(t, p, now=at(now), settings=SETTINGS)


def test_is_agent_pod_only_by_its_label() -> None:
    assert is_agent_pod(agent_pod(ABC, INSTALLED, []))
    plain = task(step("a", command=["x"]), executor="kubelet")
    assert not is_agent_pod(decode_pod(render_pod(plain)))


def test_pulling_the_agent_image_keeps_every_step_waiting() -> None:
    install = waiting(INSTALL_CONTAINER, "ImagePullBackOff", "Back-off pulling image x")
    st = _status(ABC, agent_pod(ABC, install, [waiting(n, "PodInitializing") for n in "abc"]))
    assert st.status == "Pending"
    assert [s.state for s in st.steps] == ["Waiting"] * 3
    assert st.steps[0].reason == "ImagePullBackOff"
    assert st.steps[0].message == "agent image: Back-off pulling image x"
    assert st.condition().reason == "ImagePullBackOff"


def test_a_waiting_agent_is_waiting_not_running() -> None:
    p = agent_pod(ABC, INSTALLED, [running(n, 0.6) for n in "abc"])
    st = _status(ABC, p)
    assert [s.state for s in st.steps] == ["Running", "Waiting", "Waiting"]
    assert st.steps[1].reason == "WaitingForPreviousStep"
    assert st.progress == "1/3"
    assert st.condition().message == "step a (1/3) is running"


def test_the_next_step_runs_from_the_previous_ones_finish() -> None:
    a = done("a", 0, state("a", 0, 1.0, 2.25, results=(("digest", "sha256:1\n"),)))
    p = agent_pod(ABC, INSTALLED, [a, running("b", 0.6), running("c", 0.6)])
    st = _status(ABC, p)
    assert [s.state for s in st.steps] == ["Terminated", "Running", "Waiting"]
    assert st.steps[0].started_at == ms(1.0)
    assert st.steps[0].finished_at == ms(2.25)  # the agent's milliseconds
    assert st.steps[0].results == [ResultValue(name="digest", value="sha256:1\n")]
    assert st.steps[1].started_at == ms(2.25)
    assert st.progress == "2/3"


def test_success_with_a_continued_failure_and_results() -> None:
    mains = [
        done("a", 0, state("a", 0, 1, 2, results=(("digest", "sha256:1"),))),
        done("b", 0, state("b", 3, 2.001, 3, abort=False)),  # onError continue: agent exits 0
        done("c", 0, state("c", 0, 3.002, 4.5)),
    ]
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains, phase="Succeeded"))
    assert st.status == "Successful"
    assert st.condition().reason == "Succeeded"
    b = st.steps[1]
    assert (b.state, b.exit_code, b.reason) == ("Terminated", 3, "ContinuedOnError")
    assert st.steps[0].results == [ResultValue(name="digest", value="sha256:1")]
    assert st.completion_time == "2024-01-06T22:19:28Z"
    assert st.duration == "3s"


def test_a_failure_stops_the_task_and_later_steps_are_not_run() -> None:
    t = task(
        step("a", command=["x"]),
        step("b", command=["y"]),
        step("c", command=["z"]),
        executor="agent",
    )
    mains = [
        done("a", 0, state("a")),
        done("b", 3, state("b", 3, 2, 3, error=None)),
        done("c", 0, state("c", skipped=True)),
    ]
    st = _status(t, agent_pod(t, INSTALLED, mains, phase="Failed"))
    assert st.status == "Failure"
    assert st.condition().reason == "StepFailed"
    assert st.condition().message == "step b (2/3) failed with exit code 3"
    assert [s.state for s in st.steps] == ["Terminated", "Terminated", "NotRun"]
    assert st.steps[2].started_at is None
    assert st.progress == "2/3"


def test_step_timeout_names_the_step() -> None:
    mains = [
        done("a", 0, state("a")),
        done("b", 0, state("b", 0, 2, 3)),
        done("c", 143, state("c", 143, 3, 4.2, timed_out=True, error="timed out after 1s")),
    ]
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains, phase="Failed"))
    assert st.status == "Failure"
    assert st.condition().reason == "StepTimeout"
    assert st.condition().message == ("step c (3/3) timed out (timed out after 1s; exit code 143)")
    assert st.steps[2].reason == "TimedOut"


def test_results_too_large_for_the_agent() -> None:
    error = (
        "results are 5027 bytes (the state 5205); a step's results must fit in 4096 bytes "
        "with the status fields"
    )
    mains = [done("a", 1, state("a", 1, error=error)), done("b", 0, state("b", skipped=True))]
    mains.append(done("c", 0, state("c", skipped=True)))
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains, phase="Failed"))
    assert st.condition().reason == "ResultsTooLarge"
    assert error in (st.condition().message or "")
    assert st.steps[0].results == []  # never a part of a value


def test_a_state_the_kubelet_cut_fails_a_step_with_results() -> None:
    full = state("a", 0, results=(("digest", "x" * 4000),))
    budget = 12 * 1024 // 4  # the install container and 3 steps
    mains = [done("a", 0, full[:budget]), running("b", 0.6), running("c", 0.6)]
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains))
    assert st.status == "Failure"
    assert st.condition().reason == "ResultsTooLarge"
    assert f"it keeps {budget} bytes of each termination message" in (st.condition().message or "")


def test_a_cut_state_without_results_falls_back_to_the_container() -> None:
    t = task(step("a", command=["x"]), step("b", command=["y"]), executor="agent")
    mains = [done("a", 0, state("a", error="e" * 1000)[:100]), running("b", 0.6)]
    st = _status(t, agent_pod(t, INSTALLED, mains))
    assert st.status == "Running"
    assert (st.steps[0].state, st.steps[0].exit_code) == ("Terminated", 0)
    assert st.steps[0].reason == "StateUnreadable"
    assert st.steps[1].state == "Running"


@pytest.mark.parametrize(
    ("message", "ok"),
    [
        (state("a"), True),
        (state("a")[:-1], False),
        ("", False),
        (None, False),
        ("step a failed", False),
        (state("a").replace('"v":1', '"v":2'), False),
        (json.dumps({"v": 1}), False),
    ],
)
def test_decode_state(message: str | None, ok: bool) -> None:
    assert (decode_state(message) is not None) == ok


def test_the_step_after_a_failure_never_counts_as_running() -> None:
    # step b failed; c's container still runs for a moment (its agent is about to skip)
    t = task(*(step(n, command=["x"]) for n in "abc"), executor="agent")
    mains = [done("a", 0, state("a")), done("b", 1, state("b", 1, 2, 3)), running("c", 0.6)]
    st = _status(t, agent_pod(t, INSTALLED, mains))
    assert st.status == "Failure"
    assert st.condition().message == "step b (2/3) failed with exit code 1"
    c = st.steps[2]
    assert (c.state, c.started_at, c.reason) == ("NotRun", None, None)
    assert st.progress == "2/3"


def test_the_step_after_a_timeout_or_a_skip_waits() -> None:
    t = task(*(step(n, command=["x"]) for n in "abc"), executor="agent")
    timed_out = state("a", 143, timed_out=True, error="timed out after 1s")
    p = agent_pod(t, INSTALLED, [done("a", 143, timed_out), running("b", 0.6), running("c", 0.6)])
    assert [s.state for s in _status(t, p).steps] == ["Terminated", "NotRun", "NotRun"]
    skipped = state("a", skipped=True)
    p = agent_pod(t, INSTALLED, [done("a", 0, skipped), running("b", 0.6), running("c", 0.6)])
    assert [s.state for s in _status(t, p).steps] == ["NotRun", "Waiting", "Waiting"]
