"""What a step cannot do to the agent, with real processes, against both forms:
leftovers forging the outcome or writing after it, planted links and FIFOs, values that
cannot be passed, a state that cannot be written, signals at the worst moments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow_agent._state import State, encode, write_atomic
from tests.unit.agent.conftest import BASE_ENV, DEADLINE, Agent, state, wait_until
from tests.unit.agent.test_step import SHOW, _write_result

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (unshare)")
# As in a pod (the agent is its container's PID 1) or not (a plain run: its process group).
AS_PID_1 = pytest.mark.parametrize("pid1", [False, pytest.param(True, marks=needs_root)])
STOP = "stop"  # a leftover loop ends when this file exists (so that a failure ends too)


def _argv(agent: Agent, run: Path, name: str, *opts: str, argv: list[str], pid1: bool) -> list[str]:
    step = agent.step_argv(run, name, *opts, argv=argv)
    return ["unshare", "--pid", "--fork", "--mount-proc", *step] if pid1 else step


@pytest.fixture
def stop(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / STOP
    yield path
    path.touch()
    time.sleep(0.05)  # a loop that survived (on a broken agent) sees it and ends


def _loops(n: int, stop: Path, body: str) -> str:
    """``n`` background loops running ``body`` until ``stop`` exists, detached from our
    pipes (a leftover holding them would only make the test wait)."""
    loop = f"(while [ ! -e {stop} ]; do {body}; done) >/dev/null 2>&1 </dev/null &"
    return " ".join([loop] * n)


@AS_PID_1
def test_a_leftover_cannot_forge_the_termination_message(
    agent: Agent, run: Path, stop: Path, pid1: bool
) -> None:
    term = run / "term"
    forged = encode(State("s", results=[("token", "forged")])).decode()
    forge = f"printf '%s' '{forged}' > {term}"
    script = f"{_loops(3, stop, forge)} sleep 0.2; exit 3"
    p = subprocess.run(
        _argv(
            agent, run, "s", "--termination-path", str(term), argv=["sh", "-c", script], pid1=pid1
        ),
        env=BASE_ENV,
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    time.sleep(0.3)  # a leftover that lived on would have rewritten it by now
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["abort"], s["results"]) == (3, 3, True, [])
    assert term.read_bytes() == (run / "s" / "state.json").read_bytes()


@AS_PID_1
def test_no_leftover_writes_after_the_state(
    agent: Agent, run: Path, tmp_path: Path, stop: Path, pid1: bool
) -> None:
    """The leftovers append to a workspace file and, once the state exists, say so: they
    must all be gone before it does (so before the next step can start). The termination
    path is a FIFO that we open only 0.2 s after the state appears: however long the agent
    takes after its state, nothing of the step may run in that time."""
    log = tmp_path / "workspace" / "log"
    log.parent.mkdir()
    own = run / "s" / "state.json"
    term = tmp_path / "term"
    os.mkfifo(term)
    body = f"echo x >> {log}; if [ -e {own} ]; then echo LATE >> {log}; fi"
    script = f"{_loops(3, stop, body)} sleep 0.2"
    argv = ["sh", "-c", script]
    with subprocess.Popen(
        _argv(agent, run, "s", "--termination-path", str(term), argv=argv, pid1=pid1),
        env=BASE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as p:
        wait_until(own.exists, what="the state")
        time.sleep(0.2)
        fd = os.open(term, os.O_RDONLY | os.O_NONBLOCK)  # lets the agent's write through
        try:
            out, err = p.communicate(timeout=DEADLINE)
            message = os.read(fd, 65536)
        finally:
            os.close(fd)
    assert (p.returncode, out, err) == (0, b"", b"")
    assert message == own.read_bytes()
    size = log.stat().st_size
    time.sleep(0.2)
    assert log.stat().st_size == size  # nothing writes any more
    assert b"LATE" not in log.read_bytes()
    assert size > 0  # the loops did run


@pytest.mark.parametrize("where", ["argv", "env"])
def test_a_nul_byte_in_a_substituted_result_fails_with_a_state(
    agent: Agent, run: Path, where: str
) -> None:
    _write_result(run, "a", "r", b"a\0b")
    ref = "$(steps.a.results.r)"
    env = {**BASE_ENV, "V": ref} if where == "env" else BASE_ENV
    argv = ["touch", str(run / "ran"), *([ref] if where == "argv" else [])]
    term = run / "term"
    p = agent.step(run, "b", "--prev", "a", "--termination-path", str(term), argv=argv, env=env)
    s = state(run, "b")
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 1, True)
    assert s["error"] == (
        f"{ref}: the value has a NUL byte, which an argument or an environment variable cannot hold"
    )
    assert p.stderr == f"taskflow-agent: step b: {s['error']}\n".encode()
    assert term.read_bytes() == (run / "b" / "state.json").read_bytes()
    assert not (run / "ran").exists()


def _termination(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_bytes())
    return data


@pytest.mark.parametrize("on_error", ["stopAndFail", "continue"])
def test_a_state_that_cannot_be_written_is_still_reported(
    agent: Agent, run: Path, on_error: str
) -> None:
    (run / "s" / "state.json").mkdir(parents=True)  # the state's path is taken
    term = run / "term"
    opts = ("--on-error", on_error, "--termination-path", str(term))
    p = agent.step(run, "s", *opts, argv=["true"])
    s = _termination(term)
    assert p.returncode == 1  # whatever onError says: no later step can start
    assert (s["exitCode"], s["abort"], s["skipped"]) == (0, True, False)
    assert str(s["error"]).startswith("cannot write the state: [Errno 21] Is a directory")
    assert f"taskflow-agent: step s: {s['error']}\n".encode() in p.stderr
    assert set(os.listdir(run / "s")) == {"state.json", "results"}  # no temp file left


@needs_root
def test_a_read_only_run_directory_is_reported(agent: Agent, run: Path) -> None:
    """The run directory read-only (a mount) and no results/ yet: nothing can be written
    there, the command does not run, the termination message says why."""
    own = run / "s"
    own.mkdir()
    term = run / "term"
    step = agent.step_argv(
        run, "s", "--termination-path", str(term), argv=["touch", str(run / "ran")]
    )
    script = f'mount --bind {own} {own} && mount -o remount,bind,ro {own} && exec "$@"'
    p = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", *step],
        env=BASE_ENV,
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    s = _termination(term)
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 1, True)
    assert "Read-only file system" in str(s["error"])
    assert "cannot write the state" in str(s["error"])
    assert not (run / "ran").exists()
    assert not (own / "state.json").exists()


def test_an_unusable_run_directory_is_reported(agent: Agent, run: Path) -> None:
    (run / "s").write_bytes(b"")  # a file where the step's directory belongs
    term = run / "term"
    p = agent.step(run, "s", "--termination-path", str(term), argv=["touch", str(run / "ran")])
    s = _termination(term)
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 1, True)
    assert str(s["error"]).startswith(
        f"cannot create {run}/s/results: Not a directory; cannot write the state: "
    )
    assert not (run / "ran").exists()


def _communicate(p: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """``p.communicate`` that kills ``p`` when it overruns (``with Popen`` would wait)."""
    try:
        return p.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        p.kill()
        raise


def _masks(pid: int) -> int:
    """The signals ``pid`` blocks or catches (its own from /proc)."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["SigBlk"], 16) | int(fields["SigCgt"], 16)


def _ready_for(pid: int, sig: int) -> bool:
    return bool(_masks(pid) >> (sig - 1) & 1)


def test_a_second_signal_while_waiting_still_ends_in_a_state(agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    with agent.start(run, "b", "--prev", "a", argv=["touch", str(run / "ran")]) as p:
        # SIGCHLD: blocked by the same call as the forwarded signals, and never unblocked by
        # the waits (sigtimedwait and the inotify poll unblock the forwarded ones while
        # they sleep, so /proc shows those unblocked most of the time)
        wait_until(lambda: _ready_for(p.pid, signal.SIGCHLD), what="the agent's signal mask")
        time.sleep(0.2)  # into the wait (nothing observable; either way it must hold)
        os.kill(p.pid, signal.SIGTERM)
        os.kill(p.pid, signal.SIGINT)
        # and more, while it records the first: none may escape as a traceback
        end = time.monotonic() + 0.3
        while p.poll() is None and time.monotonic() < end:
            os.kill(p.pid, signal.SIGHUP)
            time.sleep(0.0002)
        out, err = _communicate(p)
    s = state(run, "b")
    assert (p.returncode, out, err) == (0, b"", b"")
    assert (s["skipped"], s["abort"]) == (True, True)
    # whichever the wait took first (the kernel hands out the lowest number first)
    assert s["error"] in {f"{n} before the step started" for n in ("SIGTERM", "SIGINT", "SIGHUP")}
    assert not (run / "ran").exists()


def test_a_signal_during_the_hand_over_skips_the_step(
    agent: Agent, run: Path, tmp_path: Path
) -> None:
    """The signal lands after the wait, before the command exists (the agent is reading
    its script, here a FIFO that we hold): the command never starts."""
    (run / "a").mkdir()
    script = tmp_path / "script"
    os.mkfifo(script)
    ran = run / "ran"
    with agent.start(run, "b", "--prev", "a", "--script", str(script), argv=[]) as p:
        write_atomic(str(run / "a" / "state.json"), encode(State("a")))
        fd = -1

        def opened() -> bool:
            nonlocal fd
            try:  # succeeds once the agent opens the script for reading
                fd = os.open(script, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return False
            return True

        wait_until(opened, what="the agent reading its script")
        try:
            p.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            os.write(fd, f"#!/bin/sh\ntouch {ran}\n".encode())
        finally:
            os.close(fd)
        out, err = _communicate(p)
    s = state(run, "b")
    assert (p.returncode, out, err) == (0, b"", b"")
    assert (s["skipped"], s["abort"], s["error"]) == (True, True, "SIGTERM before the step started")
    assert not ran.exists()


def test_a_planted_results_link_leaks_nothing(agent: Agent, run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_bytes(b"SECRET-VALUE")
    _write_result(run, "a", "token", b"fine")
    for f in (run / "a" / "results").iterdir():
        f.unlink()
    (run / "a" / "results").rmdir()
    (run / "a" / "results").symlink_to(secret)  # what step a did to its own directory
    ref = "$(steps.a.results.token)"
    env = {**BASE_ENV, "V": ref}
    term = run / "term"
    p = agent.step(
        run, "b", "--prev", "a", "--termination-path", str(term), argv=[*SHOW, ref], env=env
    )
    s = state(run, "b")
    assert (p.returncode, p.stdout) == (1, b"")
    assert s["error"] == f"{ref}: {run}/a/results is a symbolic link, not a directory"
    for text in (p.stdout, p.stderr, term.read_bytes(), (run / "b" / "state.json").read_bytes()):
        assert b"SECRET" not in text


def test_a_planted_link_to_the_state_fails_the_reference(agent: Agent, run: Path) -> None:
    _write_result(run, "a", "r", b"v")
    (run / "a" / "state.json").rename(run / "a" / "real")
    (run / "a" / "state.json").symlink_to(run / "a" / "real")
    p = agent.step(run, "b", argv=["echo", "$(steps.a.results.r)"])
    assert (p.returncode, p.stdout) == (1, b"")
    assert state(run, "b")["error"] == (
        f"$(steps.a.results.r): {run}/a/state.json is a symbolic link, not a file"
    )


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_planted_previous_state_fails_instead_of_hanging(
    agent: Agent, run: Path, tmp_path: Path, kind: str
) -> None:
    (run / "a").mkdir()
    planted = run / "a" / "state.json"
    if kind == "fifo":
        os.mkfifo(planted)
        found = "is a FIFO, not a regular file"
    else:
        (tmp_path / "forged").write_bytes(encode(State("a")))
        planted.symlink_to(tmp_path / "forged")
        found = "is a symbolic link, not a file"
    with agent.start(run, "b", "--prev", "a", argv=["touch", str(run / "ran")]) as p:
        try:
            p.wait(timeout=5)
        finally:
            p.kill()
        err = p.stderr.read() if p.stderr else b""
    s = state(run, "b")
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 1, True)
    assert s["error"] == f"{planted} {found}"
    assert err == f"taskflow-agent: step b: {s['error']}\n".encode()
    assert not (run / "ran").exists()


def test_an_early_state_waits_for_the_previous_agent(agent: Agent, run: Path) -> None:
    """Step a writes a successful state of its own at once (its run directory is writable),
    then runs on and fails: b starts only once a's agent is done, and reads a's real state."""
    (run / "a").mkdir()
    own = run / "a" / "state.json"
    forged = encode(State("a")).decode()
    script = f"printf '%s' '{forged}' > {own}; sleep 0.5; exit 3"
    with agent.start(run, "b", "--prev", "a", argv=["touch", str(run / "ran")]) as b:
        a = agent.step(run, "a", argv=["sh", "-c", script])
        out, err = _communicate(b)
    assert (a.returncode, state(run, "a")["exitCode"]) == (3, 3)
    assert (b.returncode, state(run, "b")["skipped"], out, err) == (0, True, b"", b"")
    assert not (run / "ran").exists()


def test_an_agent_killed_from_outside_does_not_hold_up_the_next(agent: Agent, run: Path) -> None:
    """SIGKILL drops the agent's lock with no event after it: the waiting agent still sees
    it within its poll interval. (It then reads whatever state is there: the operator
    compares it with the container's exit code, see docs/agent.md's threat model.)"""
    (run / "a").mkdir()
    own = run / "a" / "state.json"
    script = f"printf '%s' '{encode(State('a')).decode()}' > {own}; exec sleep 3"  # ends by itself
    with agent.start(run, "b", "--prev", "a", argv=["true"]) as b:
        with agent.start(run, "a", argv=["sh", "-c", script], start_new_session=True) as a:
            wait_until(own.exists, what="the early state")
            time.sleep(0.2)
            assert b.poll() is None  # held by a's lock
            os.killpg(a.pid, signal.SIGKILL)
        started = time.monotonic()
        _communicate(b)
        assert time.monotonic() - started < 2.0
    assert b.returncode == 0


def test_results_in_an_env_value_reach_a_script_verbatim(agent: Agent, run: Path) -> None:
    """The documented safe form: the result in an env value, "$VAR" in the script. The
    unsafe form (the reference in the script text) runs the value as shell code."""
    hostile = 'x"; echo INJECTED uid=$(id -u); : "'
    _write_result(run, "a", "token", hostile.encode())
    env = {**BASE_ENV, "TOKEN": "$(steps.a.results.token)"}
    safe = agent.step(run, "b", "--prev", "a", argv=["sh", "-c", 'printf "%s" "$TOKEN"'], env=env)
    assert (safe.returncode, safe.stdout, safe.stderr) == (0, hostile.encode(), b"")
    unsafe = agent.step(
        run, "c", "--prev", "a", argv=["sh", "-c", 'printf "%s" "$(steps.a.results.token)"']
    )
    assert b"INJECTED uid=" in unsafe.stdout  # why the docs say so


def _userns_limit(agent_argv: list[str], instances: int) -> list[str]:
    """``agent_argv`` in a user namespace allowed ``instances`` inotify instances."""
    script = f'echo {instances} > /proc/sys/user/max_inotify_instances && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", *agent_argv]


@needs_root
def test_no_inotify_instance_left_falls_back_to_polling(static_agent: Agent, run: Path) -> None:
    """With every inotify instance of its user taken (here: a limit of 0 in its own user
    namespace), ``--wait auto`` polls: it still starts soon after the previous state, and
    says nothing. ``--wait inotify`` fails, saying which limit it hit."""
    (run / "a").mkdir()
    argv = static_agent.step_argv(run, "b", "--prev", "a", "--poll-interval", "10ms", argv=["true"])
    with subprocess.Popen(
        _userns_limit(argv, 0), env=BASE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as p:
        time.sleep(0.3)
        assert p.poll() is None, "the agent did not wait"
        write_atomic(str(run / "a" / "state.json"), encode(State("a")))
        out, err = _communicate(p)
    assert (p.returncode, out, err) == (0, b"", b"")
    assert state(run, "b")["error"] is None
    strict = static_agent.step_argv(run, "c", "--prev", "a", "--wait", "inotify", argv=["true"])
    p2 = subprocess.run(
        _userns_limit(strict, 0), env=BASE_ENV, capture_output=True, timeout=DEADLINE, check=False
    )
    assert p2.returncode == 1
    assert state(run, "c")["error"] == (
        "inotify_init1: Too many open files (this user's inotify instances are used up: "
        "fs.inotify.max_user_instances)"
    )
