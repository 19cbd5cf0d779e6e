"""Status of agent pods: the steps come from the agent's termination messages (docs/agent.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from taskflow.api import Task, decode_pod, decode_task
from taskflow.api.pod import Container, Pod
from taskflow.api.task import INSTALL_CONTAINER
from taskflow.api.task_status import ResultValue
from taskflow.reconcile import plan
from taskflow.render import render_pod
from taskflow.settings import Settings
from taskflow.status import RETRYABLE_REASONS, compute_status
from taskflow.status._agent import decode_state, is_agent_pod, message_budget
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
    retried: tuple[int, ...] = (),
) -> str:
    failed = code != 0 or timed_out or error is not None
    # as the agent writes them: only for a step that was retried
    retries = {"attempts": len(retried) + 1, "retriedExitCodes": list(retried)} if retried else {}
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
            **retries,
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


RETRIED = task(
    step("a", command=["x"], retries=2), step("b", command=["y"], retries=2), executor="agent"
)


@pytest.mark.parametrize(
    ("b_code", "b_retried", "status", "attempts", "codes"),
    [
        (0, (), "Successful", None, []),  # succeeded at once: as without retries
        (0, (1,), "Successful", 2, [1]),  # succeeded on attempt 2
        (0, (137, 1), "Successful", 3, [137, 1]),
        (4, (3, 2), "Failure", 3, [3, 2]),  # retries exhausted: the last attempt's code
    ],
)
def test_a_retried_step_is_its_last_attempt(
    b_code: int, b_retried: tuple[int, ...], status: str, attempts: int | None, codes: list[int]
) -> None:
    mains = [
        done("a", 0, state("a")),
        done("b", b_code, state("b", b_code, 2, 9, retried=b_retried)),
    ]
    st = _status(RETRIED, agent_pod(RETRIED, INSTALLED, mains, phase="Succeeded"))
    assert st.status == status
    b = st.steps[1]
    assert (b.state, b.exit_code, b.attempts, b.retried_exit_codes) == (
        "Terminated",
        b_code,
        attempts,
        codes,
    )
    assert (b.started_at, b.finished_at) == (ms(2), ms(9))  # from the first attempt's start
    shown = msgspec.to_builtins(st.steps[0])
    assert "attempts" not in shown  # left out when the command ran once
    assert "retriedExitCodes" not in shown
    if status == "Failure":
        assert st.condition().message == "step b (2/2) failed with exit code 4"


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


def test_a_cut_state_without_results_fails_the_step_and_the_next_one_runs() -> None:
    # the agent wrote its state (a exited 0, so b's agent read it and runs b), but the
    # termination message is not that state: never a silent success
    t = task(step("a", command=["x"]), step("b", command=["y"]), executor="agent")
    mains = [done("a", 0, state("a", error="e" * 1000)[:100]), running("b", 0.6)]
    st = _status(t, agent_pod(t, INSTALLED, mains))
    assert st.status == "Failure"
    cond = st.condition()
    assert cond.reason == "StateUnreadable"
    assert cond.message == (
        "step a (1/2): its state could not be read (Completed, exit code 0): its termination "
        "message is not an agent state (100 bytes)"
    )
    a, b = st.steps
    assert (a.state, a.exit_code, a.reason) == ("Terminated", 1, "StateUnreadable")
    assert b.state == "Terminated"  # its command ran: never NotRun
    assert st.progress == "2/2"


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


# -- the operator checks what it is told ----------------------------------------------------

TWO = task(step("a", command=["x"]), step("b", command=["y"], onError="continue"), executor="agent")


@pytest.mark.parametrize(
    ("name", "container", "message", "said"),
    [
        # a leftover process rewrote the termination log of a failed step
        ("a", 3, state("a", 0), "its container exited 3 but its state says exit code 0"),
        ("a", 0, state("a", 3), "its container exited 0 but its state says exit code 3"),
        ("a", 2, state("a", 3), "its container exited 2 but its state says exit code 3"),
        (
            "a",
            1,
            state("a", skipped=True),
            "its container exited 1 but its state says it was skipped",
        ),
        ("a", 0, state("b", 0), "its state is step 'b''s"),
        # onError continue: the agent exits 0 whatever the step did
        (
            "b",
            3,
            state("b", 3, abort=False),
            "its container exited 3 but its state says exit code 3 with onError continue (its "
            "agent exits 0)",
        ),
    ],
)
def test_a_state_that_disagrees_with_the_kubelet_fails_the_task(
    name: str, container: int, message: str, said: str
) -> None:
    mains = [done("a", 0, state("a"))] if name == "b" else []
    mains.append(done(name, container, message, 2, 3))
    if name == "a":
        mains.append(running("b", 0.6))
    st = _status(
        TWO, agent_pod(TWO, INSTALLED, mains, phase="Failed" if name == "b" else "Running")
    )
    assert st.status == "Failure"
    i = "ab".index(name)
    assert st.condition().reason == "StepStateMismatch"
    assert st.condition().message == f"step {name} ({i + 1}/2): {said}; the kubelet's account wins"
    s = st.steps[i]
    assert (s.state, s.reason, s.results) == ("Terminated", "StepStateMismatch", [])
    assert s.exit_code != 0
    if name == "a":  # b ran its command only if a's agent exited 0, whatever the state says
        assert st.steps[1].state == ("Terminated" if container == 0 else "NotRun")


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (0, state("a", 0)),
        (3, state("a", 3)),
        (1, state("a", 0, error="step 'x' did not write result 'r'")),
        (143, state("a", 143, timed_out=True, error="timed out after 1s")),
        (1, state("a", 0, timed_out=True, error="timed out after 1s")),
        (0, state("a", skipped=True)),
    ],
)
def test_a_state_that_agrees_with_the_kubelet_is_believed(container: int, message: str) -> None:
    p = agent_pod(TWO, INSTALLED, [done("a", container, message), running("b", 0.6)])
    assert _status(TWO, p).steps[0].reason != "StepStateMismatch"


def test_a_last_step_that_exited_3_never_succeeds_whatever_its_state_says() -> None:
    forged = state("c", 0, 3, 4, results=())
    mains = [
        done("a", 0, state("a", 0, results=(("digest", "sha256:1"),))),
        done("b", 0, state("b", 0, 2, 3)),
        done("c", 3, forged, 3, 4),
    ]
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains, phase="Failed"))
    assert (st.status, st.condition().reason) == ("Failure", "StepStateMismatch")
    assert "step c (3/3): its container exited 3 but its state says exit code 0" in (
        st.condition().message or ""
    )


# -- a container that ended without a state ends the Task at once ----------------------------


@pytest.mark.parametrize(
    ("code", "kubelet", "reason", "words"),
    [
        (137, "Error", "AgentDied", "its container ended (Error, exit code 137) without a state"),
        (1, "Error", "AgentDied", "its container ended (Error, exit code 1) without a state"),
        (137, "OOMKilled", "OOMKilled", "was killed for exceeding its memory limit (OOMKilled"),
        # the runtime's words, not a state: the agent never started
        (
            128,
            "StartError",
            "AgentDied",
            "its container ended (StartError, exit code 128: exec format error) without a state",
        ),
        (
            137,
            "ContainerStatusUnknown",
            "AgentDied",
            "(ContainerStatusUnknown, exit code 137: The container could not be located",
        ),
    ],
)
def test_an_agent_that_died_without_a_state_fails_the_task_at_once(
    code: int, kubelet: str, reason: str, words: str
) -> None:
    t = task(*(step(n, command=["x"]) for n in "abc"), executor="agent")
    words_of = {
        "StartError": "exec format error",
        "ContainerStatusUnknown": "The container could not be located when the pod was deleted",
    }
    died = terminated("b", code, 2, 3, reason=kubelet, message=words_of.get(kubelet))
    mains = [done("a", 0, state("a")), died, running("c", 0.6)]
    st = _status(t, agent_pod(t, INSTALLED, mains))  # the pod still runs: c's agent waits
    assert (st.status, st.condition().reason) == ("Failure", reason)
    assert words in (st.condition().message or "")
    assert [s.state for s in st.steps] == ["Terminated", "Terminated", "NotRun"]


def test_a_cut_state_of_a_continued_failure_is_not_a_success() -> None:
    # past ~50 containers even a state without results is cut: its failure must not vanish
    t = task(
        *(step(f"s{i}", command=["x"], onError="continue") for i in range(63)), executor="agent"
    )
    budget = 12 * 1024 // 64
    failed = [state(f"s{i}", 3, abort=False, error="the step failed") for i in range(63)]
    assert all(len(m) > budget for m in failed)
    mains = [done(f"s{i}", 0, m[:budget]) for i, m in enumerate(failed)]
    st = _status(t, agent_pod(t, INSTALLED, mains, phase="Succeeded"))
    assert st.status == "Failure"
    assert st.condition().reason == "StateUnreadable"
    assert f"cut by the kubelet, which keeps {budget} bytes" in (st.condition().message or "")
    assert "12 KiB shared by 64 containers" in (st.condition().message or "")


def test_a_step_whose_command_runs_is_never_reported_not_run() -> None:
    # a 3713-byte state under a 3072-byte budget: a's agent wrote it whole to its run
    # directory, so b's agent started b; the Task fails, b is not NotRun
    full = state("a", 0, results=(("digest", "x" * 3500),))
    assert len(full) > 3072
    mains = [done("a", 0, full[:3072]), running("b", 0.6), running("c", 0.6)]
    st = _status(ABC, agent_pod(ABC, INSTALLED, mains))
    assert st.condition().reason == "ResultsTooLarge"
    assert [s.state for s in st.steps] == ["Terminated", "Terminated", "NotRun"]
    assert st.steps[1].reason == "ResultsTooLarge"
    assert st.progress == "2/3"


@pytest.mark.parametrize(
    ("init", "main", "ephemeral", "budget"),
    [
        (0, 1, 0, 4096),  # the kubelet reads at most 4096 bytes of one file
        (1, 2, 0, 4096),
        (1, 3, 0, 3072),
        (1, 3, 1, 2457),  # ephemeral containers count too
        (1, 20, 0, 585),
        (1, 63, 0, 192),
        (1, 64, 2, 183),
    ],
)
def test_the_message_budget_is_the_kubelets(
    init: int, main: int, ephemeral: int, budget: int
) -> None:
    spec = {
        "initContainers": [{"name": f"i{i}"} for i in range(init)],
        "containers": [{"name": f"c{i}"} for i in range(main)],
        "ephemeralContainers": [{"name": f"e{i}", "image": "debug"} for i in range(ephemeral)],
    }
    assert message_budget(decode_pod({"spec": spec})) == budget


def test_an_ephemeral_container_shrinks_the_budget_the_message_names() -> None:
    full = state("a", 0, results=(("digest", "x" * 3000),))
    p = agent_pod(ABC, INSTALLED, [done("a", 0, full[:2457]), running("b", 0.6), running("c", 0.6)])
    p.spec.ephemeral_containers.append(Container(name="debugger", image="busybox"))
    st = _status(ABC, p)
    assert st.condition().reason == "ResultsTooLarge"
    assert "it keeps 2457 bytes of each termination message in this pod (12 KiB shared by 5 " in (
        st.condition().message or ""
    )


# -- the install container ------------------------------------------------------------------


def test_an_install_that_cannot_start_keeps_its_reason_and_names_the_agent_image() -> None:
    install = terminated(
        INSTALL_CONTAINER,
        128,
        0,
        0.1,
        reason="StartError",
        message="failed to create containerd task: exec format error",
    )
    p = agent_pod(ABC, install, [waiting(n, "PodInitializing") for n in "abc"], phase="Failed")
    st = _status(ABC, p)
    assert (st.status, st.condition().reason) == ("Failure", "AgentInstallFailed")
    message = st.condition().message or ""
    assert "StartError" in message
    assert "exec format error" in message
    assert repr(p.spec.init_containers[0].image) in message
    assert [s.state for s in st.steps] == ["NotRun"] * 3


def test_an_agent_image_that_never_pulls_names_the_agent_image() -> None:
    install = waiting(INSTALL_CONTAINER, "ErrImagePull", "rpc error: not found")
    p = agent_pod(ABC, install, [waiting(n, "PodInitializing") for n in "abc"], phase="Pending")
    assert _status(ABC, p, now=10).condition().reason == "ImagePullBackOff"
    st = _status(ABC, p, now=400)
    assert (st.status, st.condition().reason) == ("Failure", "AgentInstallFailed")
    image = p.spec.init_containers[0].image
    assert f"cannot pull image {image!r}" in (st.condition().message or "")
    fatal = waiting(INSTALL_CONTAINER, "InvalidImageName", "bad")
    p = agent_pod(ABC, fatal, [waiting(n, "PodInitializing") for n in "abc"], phase="Pending")
    assert _status(ABC, p, now=1).condition().reason == "AgentInstallFailed"


def test_an_agent_image_the_registry_does_not_have_fails_at_once_never_retried() -> None:
    message = "rpc error: code = NotFound desc = failed to resolve reference: not found"
    install = waiting(INSTALL_CONTAINER, "ErrImagePull", message)
    p = agent_pod(ABC, install, [waiting(n, "PodInitializing") for n in "abc"], phase="Pending")
    st = _status(ABC, p, now=1)
    assert (st.status, st.condition().reason) == ("Failure", "AgentInstallFailed")
    image = p.spec.init_containers[0].image
    assert f"the registry has no image {image!r}" in (st.condition().message or "")
    assert "AgentInstallFailed" not in RETRYABLE_REASONS


def test_a_retried_steps_events_come_when_its_state_is_read() -> None:
    running_b = [done("a", 0, state("a")), running("b", 0.6)]
    before = _status(RETRIED, agent_pod(RETRIED, INSTALLED, running_b))
    t = decode_task({**msgspec.to_builtins(RETRIED), "status": msgspec.to_builtins(before)})
    mains = [done("a", 0, state("a")), done("b", 0, state("b", 0, 2, 9, retried=(3,)))]
    p = plan(
        t, agent_pod(RETRIED, INSTALLED, mains, phase="Succeeded"), now=at(100), settings=SETTINGS
    )
    assert [(e.reason, e.message) for e in p.events] == [
        ("Retrying", "step b attempt 2 of 3 after exit code 3"),
        ("StepSucceeded", "step b (2/2) succeeded"),
        ("Succeeded", "All 2 steps succeeded in 8s"),
    ]
    assert p.status is not None
    assert (p.status.status, p.status.steps[1].attempts) == ("Successful", 2)
