"""``taskflow-agent step`` as real processes, against both forms of the agent (``python -m``
and the static executable): exact argv and environment, exit codes, signals, timeouts,
results and their limit, substitution into argv, env and scripts."""

from __future__ import annotations

import calendar
import json
import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.agent.conftest import BASE_ENV, DEADLINE, Agent, state, wait_until

# sh prints the argv and environment it was exec'd with, byte for byte, from the kernel.
SHOW = ["sh", "-c", 'cat /proc/$$/cmdline; printf "\\n=====\\n"; cat /proc/$$/environ']


def _shown(out: bytes) -> tuple[list[bytes], list[bytes]]:
    argv, env = out.split(b"\n=====\n")
    return argv.split(b"\0")[:-1], env.split(b"\0")[:-1]


def test_child_gets_exactly_its_argv_and_environment(agent: Agent, run: Path) -> None:
    env: dict[str, str | bytes] = {
        **BASE_ENV,
        "EMPTY": "",
        "SPACES": " a  b ",
        "LATIN": b"\xe9\xff",
        "EQ": "a=b",
    }
    args = [
        "",
        "two words",
        "--name",
        "--",
        "$(date)",
        b"\xff\xfe".decode(errors="surrogateescape"),
    ]
    p = agent.step(run, "s", argv=[*SHOW, *args], env=env)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""  # the agent itself says nothing
    argv, environ = _shown(p.stdout)
    assert argv == [b"sh", b"-c", SHOW[2].encode(), *(os.fsencode(a) for a in args)]
    expected = [
        os.fsencode(k) + b"=" + (v if isinstance(v, bytes) else v.encode()) for k, v in env.items()
    ]
    assert environ == expected  # in order, too


def test_state_of_a_successful_step(agent: Agent, run: Path) -> None:
    before = time.time()
    p = agent.step(run, "s", "--termination-path", str(run / "term"), argv=["true"])
    after = time.time()
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    s = state(run, "s")
    assert s == {
        "v": 1,
        "name": "s",
        "exitCode": 0,
        "startedAt": s["startedAt"],
        "finishedAt": s["finishedAt"],
        "skipped": False,
        "timedOut": False,
        "abort": False,
        "error": None,
        "results": [],
    }
    for key in ("startedAt", "finishedAt"):
        t = calendar.timegm(time.strptime(s[key][:19], "%Y-%m-%dT%H:%M:%S"))
        assert before - 1 <= t + int(s[key][20:23]) / 1000 <= after + 1
        assert len(s[key]) == 24
        assert s[key].endswith("Z")
    assert s["startedAt"] <= s["finishedAt"]
    assert (run / "term").read_bytes() == (run / "s" / "state.json").read_bytes()
    assert (run / "s" / "results").is_dir()
    assert {p.name for p in (run / "s").iterdir()} == {"results", "state.json"}


@pytest.mark.parametrize(
    ("on_error", "code", "agent_exit", "abort"),
    [
        ("stopAndFail", 3, 3, True),
        ("continue", 3, 0, False),
        ("stopAndFail", 0, 0, False),
    ],
)
def test_exit_codes(
    agent: Agent, run: Path, on_error: str, code: int, agent_exit: int, abort: bool
) -> None:
    p = agent.step(run, "s", "--on-error", on_error, argv=["sh", "-c", f"exit {code}"])
    assert p.returncode == agent_exit
    s = state(run, "s")
    assert (s["exitCode"], s["abort"], s["error"]) == (code, abort, None)


def test_command_not_found(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", argv=["no-such-command-x", "a"])
    assert p.returncode == 127
    s = state(run, "s")
    assert s["exitCode"] == 127
    assert s["abort"]
    assert s["error"] == "no-such-command-x: not found in PATH (/usr/local/bin:/usr/bin:/bin)"
    assert p.stderr == f"taskflow-agent: step s: {s['error']}\n".encode()


def test_path_lookup_uses_the_childs_path(agent: Agent, run: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text('#!/bin/sh\necho mine "$@"\n')
    tool.chmod(0o755)
    env = {**BASE_ENV, "PATH": f"{bindir}:/usr/bin:/bin"}
    p = agent.step(run, "s", argv=["mytool", "x"], env=env)
    assert (p.returncode, p.stdout) == (0, b"mine x\n")


def test_killed_by_a_signal_is_128_plus_signal(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", argv=["sh", "-c", "kill -KILL $$"])
    assert p.returncode == 137
    assert state(run, "s")["exitCode"] == 137


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_signals_reach_the_child(agent: Agent, run: Path, sig: signal.Signals) -> None:
    ready = run / "ready"
    script = (
        f"trap 'echo got {sig.name}; kill $! 2>/dev/null; exit 42' {sig.name[3:]}; : > {ready}; "
        "while :; do sleep 1 & wait $!; done"
    )
    with agent.start(run, "s", argv=["sh", "-c", script]) as p:
        wait_until(ready.exists, what="the child's trap")
        p.send_signal(sig)
        out, err = p.communicate(timeout=DEADLINE)
    assert (p.returncode, out, err) == (42, f"got {sig.name}\n".encode(), b"")
    assert state(run, "s")["exitCode"] == 42


def test_signal_while_waiting_ends_the_wait_and_skips(agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    with agent.start(run, "b", "--prev", "a", argv=["touch", str(run / "ran")]) as p:
        # No readiness file to wait for before the command runs: give the agent time to
        # install its handlers (a bounded poll on its own state would never succeed).
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=DEADLINE)
    s = state(run, "b")
    assert (p.returncode, out, err) == (0, b"", b"")
    assert (s["skipped"], s["abort"], s["error"]) == (True, True, "SIGTERM before the step started")
    assert not (run / "ran").exists()


def test_timeout_terminates_then_reports(agent: Agent, run: Path) -> None:
    started = time.monotonic()
    p = agent.step(run, "s", "--timeout", "300ms", "--grace", "10s", argv=["sleep", "20"])
    took = time.monotonic() - started
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["timedOut"], s["abort"]) == (143, 143, True, True)
    assert s["error"] == "timed out after 0.3s"
    assert 0.3 <= took < 5


def test_timeout_kills_after_the_grace(agent: Agent, run: Path) -> None:
    started = time.monotonic()
    p = agent.step(
        run,
        "s",
        "--timeout",
        "200ms",
        "--grace",
        "300ms",
        "--on-error",
        "continue",
        argv=["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
    )
    took = time.monotonic() - started
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["timedOut"], s["abort"]) == (0, 137, True, False)
    assert 0.5 <= took < 5


def test_a_timed_out_step_that_exits_zero_still_fails(agent: Agent, run: Path) -> None:
    p = agent.step(
        run,
        "s",
        "--timeout",
        "200ms",
        argv=["sh", "-c", "trap 'kill $! 2>/dev/null; exit 0' TERM; sleep 5 & wait"],
    )
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["timedOut"], s["abort"]) == (1, 0, True, True)


def test_results_are_collected_as_written(agent: Agent, run: Path) -> None:
    res = run / "s" / "results"
    script = f"printf 'line\\n' > {res}/a; printf '' > {res}/empty; printf 'é✓' > {res}/u"
    p = agent.step(
        run, "s", "--result", "a", "--result", "empty", "--result", "u", argv=["sh", "-c", script]
    )
    assert p.returncode == 0, p.stderr
    assert state(run, "s")["results"] == [
        {"name": "a", "value": "line\n"},
        {"name": "empty", "value": ""},
        {"name": "u", "value": "é✓"},
    ]


def test_a_missing_result_fails_the_step(agent: Agent, run: Path) -> None:
    res = run / "s" / "results"
    p = agent.step(
        run, "s", "--result", "a", "--result", "b", argv=["sh", "-c", f"echo x > {res}/a"]
    )
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 0, True)
    assert s["results"] == [{"name": "a", "value": "x\n"}]
    assert s["error"] == (
        f"result(s) b not written (the step writes $(results.NAME.path) = {res}/NAME)"
    )


def _fill(path: Path, size: int) -> str:
    return f"head -c {size} /dev/zero | tr '\\0' x > {path}"


@pytest.mark.parametrize(
    ("limit", "sizes", "error"),
    [
        (None, [3800], None),
        # together too large: no value is cut, none is reported
        (None, [2000, 2100], "results are {total} bytes (the state "),
        # one file is already too large: not even read beyond the limit
        (None, [100, 5000], "result 'r1': {res}/r1 is 5000 bytes; "),
        # a pod with many containers: its share of the kubelet's 12 KiB, the same rules
        (512, [300], None),
        (512, [150, 200], "results are {total} bytes (the state "),
        (512, [10, 600], "result 'r1': {res}/r1 is 600 bytes; "),
        (6144, [3800], None),  # more than the kubelet reads: 4096 it is
        (6144, [100, 5000], "result 'r1': {res}/r1 is 5000 bytes; "),
    ],
)
def test_results_must_fit_the_termination_message(
    agent: Agent, run: Path, limit: int | None, sizes: list[int], error: str | None
) -> None:
    res = run / "s" / "results"
    term = run / "term"
    names = [f"r{i}" for i in range(len(sizes))]
    script = "; ".join(_fill(res / n, size) for n, size in zip(names, sizes, strict=True))
    opts = [x for n in names for x in ("--result", n)]
    if limit is not None:
        opts += ["--message-limit", str(limit)]
    p = agent.step(run, "s", *opts, "--termination-path", str(term), argv=["sh", "-c", script])
    s = state(run, "s")
    budget = min(limit or 4096, 4096)
    assert len(term.read_bytes()) <= budget
    assert term.read_bytes() == (run / "s" / "state.json").read_bytes()
    if error is None:
        assert (p.returncode, s["error"], [len(r["value"]) for r in s["results"]]) == (
            0,
            None,
            sizes,
        )
    else:
        assert (p.returncode, s["exitCode"], s["abort"], s["results"]) == (1, 1, True, [])
        values = [{"name": n, "value": "x" * size} for n, size in zip(names, sizes, strict=True)]
        total = len(json.dumps(values, separators=(",", ":")))
        assert s["error"].startswith(error.format(total=total, res=res))
        assert s["error"].endswith(f"must fit in {budget} bytes with the status fields")


def test_a_small_budget_cuts_the_error_not_the_state(agent: Agent, run: Path) -> None:
    """A long error in a small budget: cut to fit (and marked), the state stays JSON."""
    term = run / "term"
    p = agent.step(
        run, "s", "--message-limit", "300", "--termination-path", str(term), argv=["x" * 900]
    )
    s = state(run, "s")
    assert (p.returncode, s["exitCode"]) == (127, 127)
    assert len(term.read_bytes()) <= 300
    assert s["error"].startswith("xxx")
    assert s["error"].endswith("... (cut)")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.symlink_to("/etc/hostname"), "is a symbolic link, not a file"),
        (os.mkfifo, "is a FIFO, not a regular file"),  # must not block the agent
        (lambda p: p.mkdir(), "is a directory, not a regular file"),
    ],
)
def test_a_result_must_be_a_regular_file(
    agent: Agent, run: Path, make: Callable[[Path], object], message: str
) -> None:
    res = run / "s" / "results"
    res.mkdir(parents=True)
    make(res / "r")
    p = agent.step(run, "s", "--result", "r", argv=["true"])
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["results"]) == (1, 0, [])
    assert s["error"] == f"result 'r': {res}/r {message}"


def test_a_referenced_result_must_be_a_regular_file(agent: Agent, run: Path) -> None:
    _write_result(run, "a", "r", b"v")
    (run / "a" / "results" / "r").unlink()
    (run / "a" / "results" / "r").symlink_to("/etc/hostname")
    p = agent.step(run, "b", "--prev", "a", argv=["echo", "$(steps.a.results.r)"])
    s = state(run, "b")
    assert (p.returncode, p.stdout) == (1, b"")
    assert s["error"] == (f"$(steps.a.results.r): {run}/a/results/r is a symbolic link, not a file")


def _write_result(run: Path, step: str, name: str, value: bytes) -> None:
    """Stand in for a finished earlier step: its result file and its state."""
    (run / step / "results").mkdir(parents=True, exist_ok=True)
    (run / step / "results" / name).write_bytes(value)
    (run / step / "state.json").write_bytes(
        json.dumps(
            {
                "v": 1,
                "name": step,
                "exitCode": 0,
                "startedAt": "2026-12-02T01:02:03.456Z",
                "finishedAt": "2026-12-02T01:02:04.456Z",
                "skipped": False,
                "timedOut": False,
                "abort": False,
                "error": None,
                "results": [{"name": name, "value": value.decode()}],
            }
        ).encode()
    )


def test_references_in_argv_and_env(agent: Agent, run: Path) -> None:
    _write_result(run, "a", "r", b"two words\n")
    env = {**BASE_ENV, "V": "<$(steps.a.results.r)>", "KEEP": "$(date)"}
    p = agent.step(run, "b", "--prev", "a", argv=[*SHOW, "$(steps.a.results.r)", "x"], env=env)
    assert p.returncode == 0, p.stderr
    argv, environ = _shown(p.stdout)
    assert argv[3:] == [b"two words\n", b"x"]
    assert b"V=<two words\n>" in environ
    assert b"KEEP=$(date)" in environ
    assert len(environ) == len(env)


def test_references_in_a_script(agent: Agent, run: Path, tmp_path: Path) -> None:
    _write_result(run, "a", "r", b"hello")
    script = tmp_path / "script"
    script.write_text('#!/bin/sh\necho "got $(steps.a.results.r) $1 $(echo sub)"\n')
    script.chmod(0o755)
    p = agent.step(run, "b", "--prev", "a", "--script", str(script), argv=["arg1"])
    assert (p.returncode, p.stdout, p.stderr) == (0, b"got hello arg1 sub\n", b"")
    copy = run / "b" / "script"
    assert copy.read_text() == '#!/bin/sh\necho "got hello $1 $(echo sub)"\n'
    assert stat.S_IMODE(copy.stat().st_mode) == 0o700


def test_a_script_without_references_runs_in_place(agent: Agent, run: Path, tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text('#!/bin/sh\necho "$0"\n')
    script.chmod(0o755)
    p = agent.step(run, "b", "--script", str(script), argv=[])
    assert (p.returncode, p.stdout) == (0, f"{script}\n".encode())
    assert not (run / "b" / "script").exists()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("$(steps.zz.results.r)", "$(steps.zz.results.r): step 'zz' has not run before this step"),
        (
            "$(steps.a.results.nope)",
            "$(steps.a.results.nope): step 'a' did not write result 'nope' ({run}/a/results/nope"
            " is missing)",
        ),
    ],
)
def test_a_bad_reference_fails_the_step_without_running_it(
    agent: Agent, run: Path, ref: str, message: str
) -> None:
    _write_result(run, "a", "r", b"v")
    p = agent.step(run, "b", "--prev", "a", argv=["touch", str(run / "ran"), ref])
    s = state(run, "b")
    assert (p.returncode, s["exitCode"], s["abort"]) == (1, 1, True)
    assert s["error"] == message.format(run=run)
    assert p.stderr == f"taskflow-agent: step b: {s['error']}\n".encode()
    assert not (run / "ran").exists()


def test_usage_error(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", "--timeout", "soon", argv=["true"])
    assert p.returncode == 2
    assert p.stderr.startswith(b"taskflow-agent: --timeout: invalid duration 'soon'")
    assert not (run / "s").exists()


def test_an_unreadable_previous_state_fails_the_step(agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    (run / "a" / "state.json").write_bytes(b'{"v":1,"name":"a"')
    p = agent.step(run, "b", "--prev", "a", argv=["touch", str(run / "ran")])
    s = state(run, "b")
    assert (p.returncode, s["exitCode"], s["abort"], s["skipped"]) == (1, 1, True, False)
    assert s["error"] == f"{run}/a/state.json: not JSON: expected ',' or '}}' at 17"
    assert not (run / "ran").exists()


def test_a_missing_script_fails_the_step(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", "--script", str(run / "nope"), argv=[])
    s = state(run, "s")
    assert (p.returncode, s["exitCode"]) == (1, 1)
    assert s["error"] == f"[Errno 2] No such file or directory: '{run}/nope'"


def test_state_is_written_even_when_the_termination_message_cannot_be(
    agent: Agent, run: Path
) -> None:
    p = agent.step(run, "s", "--termination-path", str(run / "no" / "term"), argv=["true"])
    assert p.returncode == 1
    assert p.stderr.startswith(b"taskflow-agent: [Errno 2] No such file or directory")
    assert state(run, "s")["exitCode"] == 0


def test_a_long_error_is_cut(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", argv=["x" * 3000])
    s = state(run, "s")
    assert p.returncode == 127
    assert len(s["error"]) <= 1024
    assert s["error"].endswith("characters, cut)")


def test_arch_runs_this_machines_command(agent: Agent, run: Path) -> None:
    mine = os.uname().machine  # x86_64 -> amd64 (the mapping's table is in test_pure)
    from taskflow_agent._arch import machine_platform

    plat = machine_platform(mine)
    other = "s390x" if plat != "s390x" else "amd64"
    opts = ("--arch", f"{other}=2", "--arch", f"{plat}=3")
    p = agent.step(run, "s", *opts, argv=["echo", "other", "echo", "mine", "$(date)"])
    assert (p.returncode, p.stdout, p.stderr) == (0, b"mine $(date)\n", b"")


def test_arch_without_this_machine_fails_the_step(agent: Agent, run: Path) -> None:
    p = agent.step(run, "s", "--arch", "s390x=1", "--arch", "mips64=1", argv=["true", "true"])
    if os.uname().machine in ("s390x", "mips64"):
        pytest.skip("this machine is one of the listed platforms")
    assert p.returncode == 1
    s = state(run, "s")
    assert s["error"].startswith("the image has no command for this machine (")
    assert s["error"].endswith("); it has s390x, mips64")


# --- retries ----------------------------------------------------------------------------------

#: fails until the counter file in the workspace (argv $1) reaches $2, then exits 0; each
#: attempt writes its number as result r and exits 3 while failing
FLAKY = (
    'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$1"; '
    'printf "attempt $n" > "$RES/r"; [ $n -ge $2 ] || exit 3'
)


def _flaky(agent: Agent, run: Path, ws: Path, succeed_on: int, *opts: str) -> tuple[int, bytes]:
    env = {**BASE_ENV, "RES": str(run / "s" / "results")}
    argv = ["sh", "-c", FLAKY, "flaky", str(ws / "count"), str(succeed_on)]
    with agent.start(run, "s", "--result", "r", *opts, argv=argv, env=env) as p:
        _, err = p.communicate(timeout=DEADLINE)
    return p.returncode, err


def test_a_retried_step_succeeds_on_its_third_attempt(
    agent: Agent, run: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "kept").write_text("from before")
    started = time.monotonic()
    code, err = _flaky(agent, run, ws, 3, "--retries", "2", "--retry-delay", "100ms")
    took = time.monotonic() - started
    s = state(run, "s")
    assert code == 0, err
    assert (s["exitCode"], s["error"], s["attempts"], s["retriedExitCodes"]) == (0, None, 3, [3, 3])
    assert s["results"] == [{"name": "r", "value": "attempt 3"}]
    assert (ws / "count").read_text() == "3\n"  # the workspace is kept across attempts
    assert (ws / "kept").read_text() == "from before"
    assert err.decode().splitlines() == [
        "taskflow-agent: step s attempt 1 failed (exit 3); retrying in 0.1s (attempt 2 of 3)",
        "taskflow-agent: step s attempt 2 failed (exit 3); retrying in 0.2s (attempt 3 of 3)",
    ]
    assert took >= 0.3  # 100 ms, then 200 ms


def test_exhausted_retries_report_the_last_attempt(agent: Agent, run: Path, tmp_path: Path) -> None:
    code, _ = _flaky(agent, run, tmp_path, 99, "--retries", "2", "--retry-delay", "0s")
    s = state(run, "s")
    assert (code, s["exitCode"], s["abort"], s["attempts"]) == (3, 3, True, 3)
    assert s["retriedExitCodes"] == [3, 3]
    assert s["results"] == [{"name": "r", "value": "attempt 3"}]


def test_a_step_that_succeeds_at_once_is_not_retried(
    agent: Agent, run: Path, tmp_path: Path
) -> None:
    code, err = _flaky(agent, run, tmp_path, 1, "--retries", "3")
    s = state(run, "s")
    assert (code, err, s["exitCode"]) == (0, b"", 0)
    assert "attempts" not in s
    assert "retriedExitCodes" not in s


def test_each_attempt_gets_the_timeout(agent: Agent, run: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    p = agent.step(
        run,
        "s",
        "--timeout",
        "300ms",
        "--retries",
        "1",
        "--retry-delay",
        "0s",
        # a leftover of the first attempt must be gone before the second starts
        argv=["sh", "-c", f"sleep 30 & echo $! >> {tmp_path}/pids; sleep 20"],
    )
    took = time.monotonic() - started
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["timedOut"], s["attempts"]) == (143, 143, True, 2)
    assert s["error"] == "timed out after 0.3s"
    assert b"attempt 1 timed out after 0.3s (exit 143); retrying in 0s" in p.stderr
    assert 0.6 <= took < 10
    for pid in (tmp_path / "pids").read_text().split():
        assert not os.path.exists(f"/proc/{pid}") or _zombie(int(pid))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_results_are_the_last_attempts_only(agent: Agent, run: Path, tmp_path: Path) -> None:
    res = run / "s" / "results"
    # attempt 1 writes both results and a stray directory, attempt 2 only b: a stays missing
    script = (
        f"if [ -e {tmp_path}/again ]; then echo two > {res}/b; exit 0; fi; : > {tmp_path}/again; "
        f"echo one > {res}/a; echo one > {res}/b; mkdir -p {res}/d/e; : > {res}/d/e/f; "
        f"ln -s {tmp_path} {res}/link; exit 1"
    )
    p = agent.step(
        run,
        "s",
        "--result",
        "a",
        "--result",
        "b",
        "--retries",
        "1",
        "--retry-delay",
        "0s",
        argv=["sh", "-c", script],
    )
    s = state(run, "s")
    assert p.returncode == 1
    assert s["results"] == [{"name": "b", "value": "two\n"}]
    assert "result(s) a not written" in s["error"]
    assert sorted(os.listdir(res)) == ["b"]
    assert (tmp_path / "again").exists()  # the link was removed, not followed


def test_sigterm_while_waiting_to_retry_ends_the_step(
    agent: Agent, run: Path, tmp_path: Path
) -> None:
    argv = ["sh", "-c", f"echo x >> {tmp_path}/runs; exit 5"]
    with agent.start(run, "s", "--retries", "3", "--retry-delay", "20s", argv=argv) as p:
        wait_until(lambda: (tmp_path / "runs").exists(), what="the first attempt")
        time.sleep(0.3)  # into the delay
        started = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=DEADLINE)
    took = time.monotonic() - started
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], s["abort"], s["skipped"]) == (5, 5, True, False)
    assert s["error"] == "SIGTERM while waiting to retry (attempt 2 of 4 did not start)"
    assert "attempts" not in s  # one attempt ran
    assert (tmp_path / "runs").read_text() == "x\n"
    assert took < 5
    assert b"retrying in 20s (attempt 2 of 4)" in err


def test_a_signal_during_an_attempt_is_not_retried(agent: Agent, run: Path) -> None:
    ready = run / "ready"
    script = f"trap 'exit 42' TERM; : > {ready}; while :; do sleep 1 & wait $!; done"
    with agent.start(run, "s", "--retries", "3", argv=["sh", "-c", script]) as p:
        wait_until(ready.exists, what="the child's trap")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=DEADLINE)
    s = state(run, "s")
    assert (p.returncode, s["exitCode"], err) == (42, 42, b"")
    assert "attempts" not in s
