"""The agent's pure parts, as tables: durations, references, state JSON, the 4096-byte rule,
the command line, and the PATH lookup (on a temp directory)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskflow_agent import _codec, _state, _substitute
from taskflow_agent._args import InstallArgs, StepArgs
from taskflow_agent._duration import parse_duration
from taskflow_agent._state import State
from taskflow_agent._step import retry_delay
from taskflow_agent._supervise import SpawnError, lookpath
from taskflow_agent.cli import UsageError, parse


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("2m0.5s", 120.5),
        ("10us", 1e-5),
        ("1h2m3s4ms", 3723.004),
    ],
)
def test_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "s", "-1s", "+1s", "1d", "1..5s", "1m30", "ms", "."])
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


VALUES = {("a", "r"): b"A", ("step-2", "x_y"): b"$(steps.a.results.r)", ("a", "e"): b""}


@pytest.mark.parametrize(
    ("text", "refs", "out"),
    [
        (b"plain", [], b"plain"),
        (b"$(steps.a.results.r)", [("a", "r")], b"A"),
        (b"x$(steps.a.results.r)y$(steps.a.results.r)", [("a", "r")], b"xAyA"),
        # a value is not expanded again
        (b"$(steps.step-2.results.x_y)", [("step-2", "x_y")], b"$(steps.a.results.r)"),
        (b"[$(steps.a.results.e)]", [("a", "e")], b"[]"),
        # not references: shell, the operator's own, malformed names
        (b"$(date) $(results.r.path) $(steps.A.results.r)", [], None),
        (b"$(steps.a.results.r extra) $(steps.-a.results.r) $(steps.a.result.r)", [], None),
        (b"$$(steps.a.results.r)", [("a", "r")], b"$A"),
        (b"\xff$(steps.a.results.r)\xfe", [("a", "r")], b"\xffA\xfe"),
    ],
)
def test_substitute(text: bytes, refs: list[tuple[str, str]], out: bytes | None) -> None:
    assert _substitute.references([text]) == refs
    assert _substitute.substitute(text, lambda s, r: VALUES[(s, r)]) == (out or text)


def test_references_in_order_without_duplicates() -> None:
    chunks = [b"$(steps.b.results.x)", b"$(steps.a.results.r) $(steps.b.results.x)"]
    assert _substitute.references(chunks) == [("b", "x"), ("a", "r")]


def _full() -> State:
    return State(
        "build",
        exit_code=3,
        started_at="2026-12-02T01:02:03.456Z",
        finished_at="2026-12-02T01:02:04.000Z",
        timed_out=True,
        abort=True,
        error="timed out after 1s",
        results=[("digest", "sha256:ab\n"), ("empty", ""), ("uni", "é✓")],
    )


def test_state_encoding_is_compact_ordered_and_round_trips() -> None:
    data = _state.encode(_full())
    assert data.startswith(b'{"v":1,"name":"build","exitCode":3,"startedAt":"2026-12-02T01')
    assert b" " not in data.replace(b"timed out after 1s", b"")
    assert list(json.loads(data)) == [
        "v",
        "name",
        "exitCode",
        "startedAt",
        "finishedAt",
        "skipped",
        "timedOut",
        "abort",
        "error",
        "results",
    ]
    assert "é✓".encode() in data  # UTF-8, not \\u escapes: the kubelet counts bytes
    assert _state.decode(data) == _full()


def test_a_retried_state_adds_its_attempts_last() -> None:
    one = _state.encode(State("s", exit_code=1, attempts=1))
    assert b"attempts" not in one  # an unretried step's state is as before
    retried = State("s", exit_code=3, attempts=3, retried_exit_codes=[1, 2])
    data = _state.encode(retried)
    assert data.endswith(b'"results":[],"attempts":3,"retriedExitCodes":[1,2]}')
    assert _state.decode(data) == retried
    back = _state.decode(one)
    assert (back.attempts, back.retried_exit_codes) == (1, [])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'"attempts":"2"', "'2' is not int"),
        (b'"attempts":2,"retriedExitCodes":[true]', "True is not int"),
        (b'"attempts":2,"retriedExitCodes":1', "1 is not list"),
    ],
)
def test_state_decode_rejects_bad_attempts(data: bytes, message: str) -> None:
    base = _state.encode(State("s"))[:-1]
    with pytest.raises(ValueError, match=message):
        _state.decode(base + b"," + data + b"}")


def test_fit_drops_the_retry_details_before_the_error() -> None:
    stamp = _state.timestamp(0)
    failed = State(
        "s",
        exit_code=1,
        started_at=stamp,
        finished_at=stamp,
        error="e" * 40,
        attempts=11,
        retried_exit_codes=[255] * 10,
    )
    size = len(_state.encode(failed))
    codes = len(',"retriedExitCodes":[' + ",".join(["255"] * 10) + "]")
    kept = _state.fit(failed, limit=size - 1)
    assert (kept.retried_exit_codes, kept.attempts, kept.error) == ([], 11, "e" * 40)
    cut = _state.fit(failed, limit=size - codes - 10)
    assert (cut.attempts, cut.retried_exit_codes) == (11, [])
    assert cut.error is not None
    assert cut.error.endswith("... (cut)")
    floor = _state.minimal_size("s")
    least = _state.fit(failed, limit=floor)
    assert (least.attempts, least.error) == (1, "")
    assert len(_state.encode(least)) <= floor


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"v":2}', b'{"v":1,"name":"x"}', b'{"v":1,"name":"x","exitCode":"a"}'],
)
def test_state_decode_rejects(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|state"):
        _state.decode(data)


def test_fit_keeps_a_state_at_the_limit_and_fails_one_byte_over() -> None:
    base = State("s", results=[("r", "")])
    room = _state.TERMINATION_LIMIT - len(_state.encode(base))
    at_limit = State("s", results=[("r", "x" * room)])
    assert len(_state.encode(at_limit)) == _state.TERMINATION_LIMIT
    assert _state.fit(at_limit) is at_limit
    over = State("s", results=[("r", "x" * (room + 1))])
    fitted = _state.fit(over)
    results_size = len(
        json.dumps([{"name": "r", "value": "x" * (room + 1)}], separators=(",", ":"))
    )
    assert fitted.results == []
    assert fitted.exit_code == 1
    assert fitted.failed
    assert fitted.error == (
        f"results are {results_size} bytes (the state {_state.TERMINATION_LIMIT + 1}); "
        "a step's results must fit in 4096 bytes with the status fields"
    )
    assert len(_state.encode(fitted)) <= _state.TERMINATION_LIMIT


@pytest.mark.parametrize("limit", [4096, 512, 300, 200])
def test_fit_with_a_small_budget(limit: int) -> None:
    """Results that do not fit are dropped (the step fails, its real code kept); an error
    that does not fit is cut, marked, to what does: always JSON within the limit."""
    stamp = _state.timestamp(0)
    ran = State("build", exit_code=3, started_at=stamp, finished_at=stamp, timed_out=True)
    ran.results = [("digest", "x" * 5000)]
    ran.error = "timed out after 1s; " + "e" * 900
    fitted = _state.fit(ran, limit=limit)
    data = _state.encode(fitted)
    assert len(data) <= limit
    assert _state.decode(data) == fitted
    assert (fitted.exit_code, fitted.timed_out, fitted.results) == (3, True, [])
    assert fitted.error is not None
    if fitted.error:
        assert fitted.error.startswith("results")  # what it says, cut when it must be
    small = State("build", exit_code=0, started_at=stamp, finished_at=stamp, error="e" * 900)
    fits = len(_state.encode(small)) <= limit
    cut = _state.fit(small, limit=limit)
    assert len(_state.encode(cut)) <= limit
    assert cut.error is not None
    assert cut.error == "e" * 900 if fits else cut.error.endswith("... (cut)")


def test_a_state_that_cannot_fit_is_as_small_as_it_gets() -> None:
    name = "s" * 63
    floor = _state.minimal_size(name)
    stamp = _state.timestamp(0)
    failed = State(name, exit_code=1, started_at=stamp, finished_at=stamp, error="e" * 500)
    fitted = _state.fit(failed, limit=floor - 50)
    assert fitted.error == ""  # still failed: an empty error is not null
    assert fitted.failed
    assert len(_state.encode(fitted)) <= floor
    assert len(_state.encode(_state.fit(failed, limit=floor))) <= floor


@pytest.mark.parametrize(("value", "limit"), [("512", 512), ("4096", 4096), ("6144", 4096)])
def test_parse_message_limit(value: str, limit: int) -> None:
    assert (
        _step(["step", "--name", "s", "--message-limit", value, "--", "x"]).message_limit == limit
    )
    assert _step(["step", "--name", "s", "--", "x"]).message_limit == 4096


@pytest.mark.parametrize("value", ["0", "-1", "4k", "", "1.5", "\u0663"])
def test_parse_message_limit_rejects(value: str) -> None:
    with pytest.raises(UsageError, match="--message-limit must be a number of bytes"):
        parse(["step", "--name", "s", "--message-limit", value, "--", "x"])


def test_clip_error_keeps_short_and_cuts_long() -> None:
    assert _state.clip_error("short") == "short"
    long = _state.clip_error("e" * 5000)
    assert len(long) <= _state.ERROR_LIMIT
    assert long.endswith("(5000 characters, cut)")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_796_173_323_456_789_012, "2026-12-02T01:02:03.456Z"),
        (1_796_173_323_999_999_999, "2026-12-02T01:02:03.999Z"),
    ],
)
def test_timestamp(ns: int, text: str) -> None:
    assert _state.timestamp(ns) == text


def _step(argv: list[str]) -> StepArgs:
    args = parse(argv)
    assert isinstance(args, StepArgs)
    return args


def test_parse_step_defaults_and_every_option() -> None:
    a = _step(["step", "--name", "s1", "--", "echo", "--name", "--"])
    assert (a.name, a.prev, a.timeout, a.grace, a.on_error) == (
        "s1",
        None,
        None,
        10.0,
        "stopAndFail",
    )
    assert (a.run_dir, a.termination_path, a.script, a.results) == ("/taskflow/run", None, None, [])
    assert a.argv == [b"echo", b"--name", b"--"]
    b = _step(
        [
            "step",
            "--name=s2",
            "--prev",
            "s1",
            "--timeout",
            "1m30s",
            "--grace=2s",
            "--on-error",
            "continue",
            "--result",
            "a",
            "--result",
            "b_2",
            "--script",
            "/taskflow/scripts/s2",
            "--termination-path",
            "/dev/termination-log",
            "--run-dir",
            "/r",
            "--wait",
            "poll",
            "--poll-interval",
            "10ms",
            "--",
        ]
    )
    assert (b.name, b.prev, b.timeout, b.grace, b.on_error) == ("s2", "s1", 90.0, 2.0, "continue")
    assert (b.results, b.script, b.termination_path) == (
        ["a", "b_2"],
        "/taskflow/scripts/s2",
        "/dev/termination-log",
    )
    assert (b.run_dir, b.wait, b.poll_interval, b.argv) == ("/r", "poll", 0.01, [])
    assert _step(["step", "--name", "s", "--timeout", "0", "--", "x"]).timeout is None
    assert (a.retries, a.retry_delay) == (0, 1.0)


@pytest.mark.parametrize(
    ("opts", "retries", "delay"),
    [
        ([], 0, 1.0),
        (["--retries", "2"], 2, 1.0),
        (["--retries=10", "--retry-delay=250ms"], 10, 0.25),
        (["--retries", "0", "--retry-delay", "1m"], 0, 60.0),
    ],
)
def test_parse_retries(opts: list[str], retries: int, delay: float) -> None:
    a = _step(["step", "--name", "s", *opts, "--", "x"])
    assert (a.retries, a.retry_delay) == (retries, delay)


@pytest.mark.parametrize(
    ("base", "retry", "seconds"),
    [
        (1.0, 1, 1.0),
        (1.0, 2, 2.0),
        (1.0, 3, 4.0),
        (1.0, 6, 32.0),
        (1.0, 7, 60.0),  # 64 s, capped
        (1.0, 10, 60.0),
        (0.25, 3, 1.0),
        (90.0, 1, 60.0),
        (0.0, 5, 0.0),
    ],
)
def test_retry_delay_doubles_up_to_a_minute(base: float, retry: int, seconds: float) -> None:
    assert retry_delay(base, retry) == seconds


def test_parse_install() -> None:
    i = parse(["install", "/taskflow/bin"])
    assert isinstance(i, InstallArgs)
    assert (i.directory, i.source) == ("/taskflow/bin", None)
    j = parse(["install", "/d", "--source", "/f"])
    assert isinstance(j, InstallArgs)
    assert (j.directory, j.source) == ("/d", "/f")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "missing command"),
        (["run"], "unknown command 'run'"),
        (["install"], "install takes DIR"),
        (["step", "--name", "s"], "missing '--'"),
        (["step", "--name", "s", "--"], "no command"),
        (["step", "--name", "S", "--", "x"], "'S' is not a step name"),
        (["step", "--name", "s", "--prev", "a_b", "--", "x"], "'a_b' is not a step name"),
        (["step", "--name", "s", "--timeout", "5", "--", "x"], "--timeout: invalid duration"),
        (["step", "--name", "s", "--on-error", "ignore", "--", "x"], "continue or stopAndFail"),
        (["step", "--name", "s", "--result", "a.b", "--", "x"], "--result 'a.b'"),
        (["step", "--name", "s", "--wait", "spin", "--", "x"], "--wait must be"),
        (["step", "--name", "s", "--retries", "11", "--", "x"], "--retries must be a number"),
        (["step", "--name", "s", "--retries", "-1", "--", "x"], "from 0 to 10, not '-1'"),
        (["step", "--name", "s", "--retries", "\u0663", "--", "x"], "--retries must be"),
        (["step", "--name", "s", "--retry-delay", "1", "--", "x"], "--retry-delay: invalid"),
        (["step", "--name", "s", "--bogus", "1", "--", "x"], "unknown option '--bogus'"),
        (["step", "--name"], "--name needs a value"),
    ],
)
def test_parse_rejects(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("'", "'")):
        parse(argv)


def _exe(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_lookpath_as_execvp(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    _exe(a / "tool", 0o644)  # not executable: skipped
    (b / "tool").mkdir()  # a directory: skipped
    found = _exe(c / "tool")
    path = os.fsencode(f"{a}:{b}:{c}")
    assert lookpath(b"tool", path) == os.fsencode(found)
    assert lookpath(b"./tool", path) == b"./tool"  # a '/' means: no lookup
    assert lookpath(b"/no/such", path) == b"/no/such"  # spawn reports it
    with pytest.raises(SpawnError, match="permission denied") as denied:
        lookpath(b"tool", os.fsencode(f"{a}:{b}"))
    assert denied.value.exit_code == 126
    with pytest.raises(SpawnError, match="nope: not found in PATH") as missing:
        lookpath(b"nope", path)
    assert missing.value.exit_code == 127
    with pytest.raises(SpawnError, match=r"not found in PATH \(/bin:/usr/bin\)"):
        lookpath(b"surely-not-a-command", None)  # unset PATH: execvp's default


def test_lookpath_empty_entry_is_the_working_directory(tmp_path: Path) -> None:
    _exe(tmp_path / "here")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert lookpath(b"here", b"/nonexistent::") == b"./here"
    finally:
        os.chdir(cwd)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_codec_writes_what_json_writes_and_reads_it_back(value: _codec.Value) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert _codec.dumps(value) == text.encode()
    assert _codec.loads(text.encode()) == value
    assert _codec.loads(json.dumps(value, indent=2).encode()) == value  # whitespace, \u


def test_codec_escapes_a_lone_surrogate() -> None:
    path = os.fsdecode(b"/x/\xff")  # an undecodable byte in a path, as errors carry them
    assert _codec.dumps(path) == b'"/x/\\udcff"'
    assert _codec.loads(_codec.dumps(path)) == path


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"a"}',
        b'{"a":1,}',
        b"[1,]",
        b"01",
        b"1.5",
        b"1e3",
        b"tru",
        rb'"\x"',
        rb'"\u12"',
        b'"a',
        b'"\x01"',
        b"[] []",
        b"\xff",
        b'"\\ud800\\uzzzz"',
    ],
)
def test_codec_rejects(data: bytes) -> None:
    with pytest.raises(
        ValueError, match=r"unexpected|expected|escape|unterminated|control|extra|UTF-8"
    ):
        _codec.loads(data)


# The grammar as a regular expression, to check the hand-written scanner against.
_REF = re.compile(
    rb"\$\(steps\.([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)\.results\.([A-Za-z0-9_-]+)\)"
)
# Mostly well-formed pieces, so that about half the references are valid.
_NAME = st.sampled_from([b"a", b"b-1", b"x9", b"A", b"a_b", b"", b"-a", b"a.b", b"a)"])
_NEAR_REF = st.tuples(
    st.sampled_from([b"$(steps."] * 4 + [b"$(step.", b"(steps.", b"$$(steps."]),
    _NAME,
    st.sampled_from([b".results."] * 4 + [b".result.", b"."]),
    _NAME,
    st.sampled_from([b")"] * 4 + [b"", b"))", b" "]),
).map(b"".join)
_TEXT = st.lists(_NEAR_REF | st.sampled_from([b"$(", b")", b"x", b" ", b"\xff"]), max_size=8)


@given(_TEXT.map(b"".join))
def test_the_scanner_matches_the_grammar(text: bytes) -> None:
    expected = [(m.group(1).decode(), m.group(2).decode()) for m in _REF.finditer(text)]
    assert _substitute.references([text]) == list(dict.fromkeys(expected))
    assert _substitute.substitute(text, lambda s, r: f"<{s}|{r}>".encode()) == _REF.sub(
        lambda m: b"<" + m.group(1) + b"|" + m.group(2) + b">", text
    )


@pytest.mark.parametrize(
    ("machine", "platform"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm/v7"),
        ("i686", "386"),
        ("ppc64le", "ppc64le"),
        ("weird9", "weird9"),
    ],
)
def test_machine_platform(machine: str, platform: str) -> None:
    from taskflow_agent._arch import machine_platform

    assert machine_platform(machine) == platform


@pytest.mark.parametrize(
    ("arches", "mine", "want"),
    [
        ([("amd64", 2), ("arm64/v8", 1)], "amd64", [b"a", b"b"]),
        ([("amd64", 2), ("arm64/v8", 1)], "arm64", [b"c"]),
        ([("amd64", 2), ("arm/v7", 1)], "arm/v7", [b"c"]),
        ([("arm/v6", 2), ("arm/v7", 1)], "arm/v7", [b"c"]),
        ([("arm", 2), ("arm/v7", 1)], "arm/v7", [b"a", b"b"]),  # no variant: fits any
        ([("amd64", 2), ("arm64", 1)], "s390x", None),
    ],
)
def test_arch_select(arches: list[tuple[str, int]], mine: str, want: list[bytes] | None) -> None:
    from taskflow_agent._arch import select

    assert select(arches, [b"a", b"b", b"c"], mine) == want


def test_parse_arch() -> None:
    args = parse(
        ["step", "--name", "s", "--arch", "amd64=1", "--arch=arm/v7=2", "--", "a", "b", "c"]
    )
    assert isinstance(args, StepArgs)
    assert args.arches == [("amd64", 1), ("arm/v7", 2)]


@pytest.mark.parametrize(
    "opts",
    [
        ["--arch", "amd64", "--", "a"],
        ["--arch", "amd64=0", "--", "a"],
        ["--arch", "=1", "--", "a"],
        ["--arch", "amd64=2", "--", "a"],
        ["--arch", "amd64=1", "--script", "/s", "--", "a"],
    ],
)
def test_parse_arch_rejects(opts: list[str]) -> None:
    with pytest.raises(UsageError, match="--arch"):
        parse(["step", "--name", "s", *opts])


def test_prepare_leaves_the_parsed_argv_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskflow_agent import _arch, _step

    opts = ["--run-dir", str(tmp_path), "--arch", "amd64=1", "--arch", "arm64=2"]
    args = parse(["step", "--name", "s", *opts, "--", "a", "b", "c"])
    assert isinstance(args, StepArgs)
    monkeypatch.setattr(_arch, "machine_platform", lambda: "arm64")
    argv, _ = _step._prepare(args, str(tmp_path / "s"))
    assert argv == [b"b", b"c"]
    assert args.argv == [b"a", b"b", b"c"]  # the args stay what the command line said
