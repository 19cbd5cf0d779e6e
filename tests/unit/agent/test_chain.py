"""Several agents in one run directory, started together as the pod's containers are:
hand-off order, onError and abort along a chain, the two ways of waiting, and reaping as
PID 1."""

from __future__ import annotations

import calendar
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from taskflow_agent._state import State, encode, timestamp, write_atomic
from tests.unit.agent.conftest import DEADLINE, Agent, state, wait_until


def _chain(agent: Agent, run: Path, steps: list[tuple[str, list[str], list[str]]]) -> list[int]:
    """Start every step at once (each waits for the one before); their exit codes."""
    for name, _, _ in steps:
        (run / name).mkdir()
    procs = []
    prev: str | None = None
    for name, opts, argv in steps:
        chain = ["--prev", prev] if prev else []
        procs.append(agent.start(run, name, *chain, *opts, argv=argv, stdout=None, stderr=None))
        prev = name
    return [p.wait(timeout=DEADLINE) for p in procs]


def _log(run: Path, text: str) -> list[str]:
    return ["sh", "-c", f"echo {text} >> {run}/log"]


def test_steps_run_in_order(agent: Agent, run: Path) -> None:
    steps: list[tuple[str, list[str], list[str]]] = [
        (n, [], _log(run, n)) for n in ("c1", "c2", "c3")
    ]
    # Started in reverse: the order comes from the waits, not from the start order.
    for name, _, _ in steps:
        (run / name).mkdir()
    procs = [
        agent.start(run, n, *(["--prev", p] if p else []), argv=a, stdout=None, stderr=None)
        for (n, _, a), p in reversed(list(zip(steps, [None, "c1", "c2"], strict=True)))
    ]
    assert [p.wait(timeout=DEADLINE) for p in procs] == [0, 0, 0]
    assert (run / "log").read_text() == "c1\nc2\nc3\n"
    s1, s2, s3 = (state(run, n) for n in ("c1", "c2", "c3"))
    assert s1["finishedAt"] <= s2["startedAt"] <= s2["finishedAt"] <= s3["startedAt"]


@pytest.mark.parametrize(
    ("on_error", "codes", "ran", "skipped", "aborts"),
    [
        # a failing step stops the rest: they exit 0 at once, as skipped and aborted
        ("stopAndFail", [5, 0, 0], "a\n", [False, True, True], [True, True, True]),
        # continue: later steps run, the failure's real code is in its state
        ("continue", [0, 0, 0], "a\nb\nc\n", [False, False, False], [False, False, False]),
    ],
)
def test_on_error_along_a_chain(
    agent: Agent,
    run: Path,
    on_error: str,
    codes: list[int],
    ran: str,
    skipped: list[bool],
    aborts: list[bool],
) -> None:
    steps = [
        ("a", ["--on-error", on_error], ["sh", "-c", f"echo a >> {run}/log; exit 5"]),
        ("b", [], _log(run, "b")),
        ("c", [], _log(run, "c")),
    ]
    assert _chain(agent, run, steps) == codes
    assert (run / "log").read_text() == ran
    states = [state(run, n) for n in "abc"]
    assert [s["skipped"] for s in states] == skipped
    assert [s["abort"] for s in states] == aborts
    assert states[0]["exitCode"] == 5
    for s in states[1:]:
        if s["skipped"]:
            assert (s["exitCode"], s["startedAt"], s["finishedAt"]) == (0, None, None)


def test_abort_propagates_from_the_middle(agent: Agent, run: Path) -> None:
    steps = [
        ("a", [], _log(run, "a")),
        ("b", [], ["sh", "-c", "exit 2"]),
        ("c", ["--on-error", "continue"], _log(run, "c")),
    ]
    assert _chain(agent, run, steps) == [0, 2, 0]
    assert (run / "log").read_text() == "a\n"
    c = state(run, "c")
    assert (c["skipped"], c["abort"], c["error"]) == (True, True, None)


def test_results_flow_down_a_chain(agent: Agent, run: Path) -> None:
    steps = [
        ("a", ["--result", "r"], ["sh", "-c", f"printf one > {run}/a/results/r"]),
        (
            "b",
            ["--result", "r"],
            ["sh", "-c", f"printf '%s-two' '$(steps.a.results.r)' > {run}/b/results/r"],
        ),
        (
            "c",
            [],
            ["sh", "-c", "echo '$(steps.a.results.r) $(steps.b.results.r)' > " + f"{run}/out"],
        ),
    ]
    assert _chain(agent, run, steps) == [0, 0, 0]
    assert (run / "out").read_text() == "one one-two\n"
    assert state(run, "b")["results"] == [{"name": "r", "value": "one-two"}]


def _handoff_ms(agent: Agent, run: Path, *opts: str) -> float:
    """Write the previous step's state now; how long until the waiting agent started."""
    (run / "a").mkdir()
    with agent.start(run, "b", "--prev", "a", *opts, argv=["true"]) as p:
        time.sleep(0.3)  # let it reach its wait (nothing observable to poll for)
        assert p.poll() is None, "the agent did not wait"
        written = time.time_ns()
        write_atomic(str(run / "a" / "state.json"), encode(State("a", started_at=timestamp(0))))
        assert p.wait(timeout=DEADLINE) == 0
    return _ms(state(run, "b")["startedAt"]) - written / 1e6


def _ms(stamp: str) -> float:
    """Milliseconds since the epoch of an agent timestamp."""
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000.0 + int(stamp[20:23])


# Generous bounds for a shared 2-core machine; python -m benchmarks.tools.agent measures.
def test_a_polling_agent_starts_soon_after_the_previous_state(agent: Agent, run: Path) -> None:
    delay = _handoff_ms(agent, run, "--wait", "poll", "--poll-interval", "50ms")
    assert -1 <= delay < 250


def test_an_inotify_agent_starts_soon_after_the_previous_state(
    static_agent: Agent, run: Path
) -> None:
    """inotify is built into the static executable only."""
    delay = _handoff_ms(static_agent, run, "--wait", "inotify")
    assert -1 <= delay < 100


def test_inotify_is_refused_where_absent(python_agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    p = python_agent.step(run, "b", "--prev", "a", "--wait", "inotify", argv=["true"])
    assert p.returncode == 1
    assert (
        p.stderr
        == b"taskflow-agent: step b: inotify is only built into the static taskflow-agent\n"
    )
    assert state(run, "b")["error"] == "inotify is only built into the static taskflow-agent"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root")
def test_reaps_orphans_as_pid_1(agent: Agent, run: Path) -> None:
    """In its own PID namespace the agent is PID 1: orphans of the step become its children
    and must not stay zombies while the step runs."""
    # The step leaves 3 orphans that exit at once, then counts zombies in the namespace.
    script = (
        "for i in 1 2 3; do (true &) ; done; sleep 0.3; "
        "grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat 2>/dev/null | wc -l"
    )
    argv = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        *agent.step_argv(run, "s", argv=["sh", "-c", script]),
    ]
    p = subprocess.run(argv, capture_output=True, timeout=DEADLINE, check=False)
    assert (p.returncode, p.stdout.strip(), p.stderr) == (0, b"0", b"")
    wait_until(lambda: (run / "s" / "state.json").exists())
