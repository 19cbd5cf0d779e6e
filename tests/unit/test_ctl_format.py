"""Formatting of ``kubectl taskflow`` (pure): colour, prefixes, lines, times, tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from taskflow.ctl import _format as f
from taskflow.ctl._describe import describe, recent_events
from taskflow.ctl._model import Attempt, StepView, decode_task

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("isatty", "env", "want"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
        (False, {"NO_COLOR": "1"}, False),
    ],
)
def test_use_colour(isatty: bool, env: dict[str, str], want: bool) -> None:
    assert f.use_colour(isatty, env) is want


def test_prefix_plain_and_coloured() -> None:
    assert f.step_prefix("build", 0, False) == "[build] "
    assert f.step_prefix("build", 0, True) == "\x1b[36m[build]\x1b[0m "
    # each position its colour, cycling; never red or green (failure/success)
    colours = {f.step_prefix("s", i, True)[2:4] for i in range(len(f.STEP_COLOURS))}
    assert len(colours) == len(f.STEP_COLOURS)
    assert not colours & {f.RED, f.GREEN}
    assert f.step_prefix("s", len(f.STEP_COLOURS), True) == f.step_prefix("s", 0, True)


def test_paint_leaves_empty_text_alone() -> None:
    assert f.paint("", f.RED, True) == ""
    assert f.paint("x", f.RED, False) == "x"
    assert f.paint("x", f.RED, True) == "\x1b[31mx\x1b[0m"


@pytest.mark.parametrize(
    ("chunks", "want"),
    [
        ([b"a\nb\n"], ["a", "b"]),
        ([b"a", b"b\n", b"c"], ["ab", "c"]),  # a line across chunks; the last without \n
        ([b"\n\n"], ["", ""]),  # empty lines are lines
        (["é€".encode()[:1], "é€".encode()[1:] + b"\n"], ["é€"]),  # UTF-8 split mid-character
        ([b"\xff\n"], ["\ufffd"]),  # invalid bytes do not stop the stream
        ([b"x" * 300_000 + b"\n"], ["x" * 300_000]),  # any line length
        ([b""], []),
    ],
)
def test_line_splitter(chunks: list[bytes], want: list[str]) -> None:
    s = f.LineSplitter()
    got: list[str] = []
    for c in chunks:
        got += s.feed(c)
    got += s.flush()
    assert got == want


@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (7199, "119m"),
        (7200, "2h"),
        (172799, "47h"),
        (172800, "2d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (-5, "0s"),  # a clock ahead of ours
    ],
)
def test_age(seconds: int, want: str) -> None:
    since = datetime.fromtimestamp(NOW.timestamp() - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f.age(since, NOW) == want


def test_age_unknown() -> None:
    assert f.age(None, NOW) == "<unknown>"
    assert f.age("yesterday", NOW) == "<unknown>"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("2m3s", 123.0),
        (" 10s ", 10.0),
        ("0", 0.0),
    ],
)
def test_parse_timeout(text: str, want: float) -> None:
    assert f.parse_timeout(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["", "m", "5x", "5m junk", "s5", "-1", "-5s", "1h 2m"])
def test_parse_timeout_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        f.parse_timeout(text)


def att(word: str, reason: str | None = None, message: str | None = None, **kw: Any) -> Attempt:
    return Attempt(
        number=kw.get("number", 1),
        pod="p",
        steps=(),
        final=word in ("Successful", "Failure", "Cancelled"),
        word=word,
        reason=reason,
        message=message,
        duration=kw.get("duration"),
    )


@pytest.mark.parametrize(
    ("attempt", "want"),
    [
        (att("Successful", "Succeeded", "all done", duration="14s"), "task/t Successful in 14s"),
        (
            att("Failure", "StepFailed", "step b exited with code 3", duration="1m5s"),
            "task/t Failure (StepFailed: step b exited with code 3) after 1m5s",
        ),
        (att("Failure", "PodDeleted"), "task/t Failure (PodDeleted)"),
        (att("Cancelled", "Cancelled", "by user"), "task/t Cancelled"),
        (att("Running", "Running"), "task/t Running"),
        (att("Pending", "Unschedulable", "0/1 nodes"), "task/t Pending (Unschedulable: 0/1 nodes)"),
        (
            att("Failure", "StepFailed", "x", number=2, duration="3s"),
            "task/t attempt 2 Failure (StepFailed: x) after 3s",
        ),
    ],
)
def test_summary(attempt: Attempt, want: str) -> None:
    assert f.summary("t", attempt, False) == want


def test_summary_colours_the_word_only() -> None:
    line = f.summary("t", att("Failure", "StepFailed", "x"), True)
    assert line == "task/t \x1b[31;1mFailure\x1b[0m (StepFailed: x)"
    assert "\x1b[32;1mSuccessful" in f.summary("t", att("Successful"), True)


def task_obj(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "build",
            "namespace": "ci",
            "uid": "u1",
            "creationTimestamp": "2030-01-01T11:59:00Z",
            **meta,
        },
        "spec": {"steps": [{"name": n, "image": "busybox"} for n in ("a", "b", "c", "d", "e")]},
        "status": status,
    }


RUNNING = {
    "status": "Running",
    "progress": "3/5",
    "podName": "build-pod",
    "startTime": "2030-01-01T11:59:30Z",
    "steps": [
        {"name": "a", "state": "Terminated", "exitCode": 0},
        {"name": "b", "state": "Terminated", "exitCode": 2},
        {"name": "c", "state": "Running", "startedAt": "2030-01-01T11:59:50Z"},
        {"name": "d", "state": "NotRun"},
    ],
}


@pytest.mark.parametrize(
    ("ascii_only", "want"),
    [(False, "✓✗▸-·"), (True, "+x>-.")],
)
def test_steps_column(ascii_only: bool, want: str) -> None:
    assert f.steps_column(decode_task(task_obj(RUNNING)), ascii_only) == want


def test_get_row() -> None:
    view = decode_task(task_obj(RUNNING))
    assert f.get_row(view, NOW, True, False) == ["build", "Running", "3/5", "+x>-.", "30s", "60s"]
    assert f.get_row(view, NOW, True, True)[0] == "ci"
    done = decode_task(task_obj({"status": "Successful", "duration": "1m5s", "attempt": 2}))
    assert f.get_row(done, NOW, True, False)[1:5] == ["Successful (attempt 2)", "", ".....", "1m5s"]
    fresh = decode_task(task_obj({}))  # no status yet
    assert f.get_row(fresh, NOW, False, False)[1:4] == ["Pending", "", "·····"]


def test_can_encode() -> None:
    assert f.can_encode("✓", "utf-8")
    assert not f.can_encode("✓", "ascii")
    assert not f.can_encode("✓", None)
    assert not f.can_encode("✓", "no-such-codec")


def test_table_aligns_like_kubectl() -> None:
    out = f.table(("NAME", "STATUS"), [["a-long-name", "Running"], ["b", ""]])
    assert out == "NAME          STATUS\na-long-name   Running\nb\n"
    assert f.table(("X",), [], indent="  ") == "  X\n"


def test_step_duration_and_one_line() -> None:
    s = StepView(name="a", started_at="2030-01-01T11:58:55Z", finished_at="2030-01-01T11:59:00Z")
    assert f.step_duration(s, NOW) == "5s"
    assert f.step_duration(StepView(name="a", started_at="2030-01-01T11:59:00Z"), NOW) == "1m0s"
    assert f.step_duration(StepView(name="a"), NOW) == ""
    assert f.one_line("a\n  b\tc") == "a b c"
    assert f.one_line("x" * 50, 10) == "xxxxxxx..."
    assert f.one_line(None) == ""


def test_describe_shows_steps_condition_attempts_results_and_events() -> None:
    status = {
        **RUNNING,
        "attempt": 2,
        "steps": [
            {
                "name": "a",
                "state": "Terminated",
                "exitCode": 0,
                "startedAt": "2030-01-01T11:59:30Z",
                "finishedAt": "2030-01-01T11:59:35Z",
                "results": [{"name": "digest", "value": "sha256:abc\n"}],
            },
            {
                "name": "b",
                "state": "Terminated",
                "exitCode": 2,
                "reason": "Error",
                "message": "boom",
            },
        ],
        "conditions": [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Running",
                "message": "step c is running",
                "lastTransitionTime": "2030-01-01T11:59:50Z",
            }
        ],
        "attempts": [
            {
                "attempt": 1,
                "podName": "build-pod-1",
                "reason": "StepFailed",
                "message": "step b exited with code 1",
                "startTime": "2030-01-01T11:50:00Z",
                "completionTime": "2030-01-01T11:51:05Z",
            }
        ],
    }
    events = [
        {
            "type": "Normal",
            "reason": "StepStarted",
            "message": "step c started",
            "lastTimestamp": "2030-01-01T11:59:50Z",
            "source": {"component": "taskflow"},
        },
        {
            "type": "Normal",
            "reason": "PodCreated",
            "message": "created pod build-pod",
            "lastTimestamp": "2030-01-01T11:59:01Z",
            "source": {"component": "taskflow"},
        },
    ]
    text = describe(decode_task(task_obj(status)), events, NOW)
    lines = text.splitlines()
    assert "Name:        build" in lines
    assert "Status:      Running (3/5)" in lines
    assert "Attempt:     2" in lines
    assert "Pod:         build-pod" in lines
    assert "Duration:    30s" in lines  # still running: the time so far
    steps_at = lines.index("Steps:")
    assert lines[steps_at + 1].split() == [
        "STEP", "STATE", "EXIT", "STARTED", "DURATION", "REASON", "RESULTS"
    ]  # fmt: skip
    assert lines[steps_at + 2].split() == [
        "a", "Terminated", "0", "2030-01-01", "11:59:30", "5s", "digest=sha256:abc"
    ]  # fmt: skip
    assert lines[steps_at + 3].split() == ["b", "Terminated", "2", "Error"]
    assert "  b: boom" in lines
    assert any(line.split()[:4] == ["Succeeded", "Unknown", "Running", "10s"] for line in lines)
    attempts_at = lines.index("Attempts:")
    assert lines[attempts_at + 2].split()[:4] == ["1", "build-pod-1", "StepFailed", "2030-01-01"]
    assert "1m5s" in lines[attempts_at + 2]
    events_at = lines.index("Events:")
    # oldest first
    assert lines[events_at + 2].split()[:4] == ["Normal", "PodCreated", "59s", "taskflow"]
    assert lines[events_at + 3].split()[:4] == ["Normal", "StepStarted", "10s", "taskflow"]


def test_describe_of_a_fresh_task() -> None:
    text = describe(decode_task(task_obj({})), [], NOW)
    assert "Status:      Pending" in text
    assert "Pod:         <none>" in text
    assert "Condition:\n  <none>\n" in text
    assert "Events:\n  <none>\n" in text
    assert "RESULTS" not in text  # no empty column
    assert "Attempts:" not in text
    assert [ln.split()[:2] for ln in text.splitlines() if ln.startswith("  e ")] == [
        ["e", "Waiting"]
    ]


def test_recent_events_keeps_the_newest() -> None:
    events = [{"reason": str(i), "lastTimestamp": f"2030-01-01T11:{i:02d}:00Z"} for i in range(30)]
    shown = recent_events(list(reversed(events)))
    assert [e["reason"] for e in shown] == [str(i) for i in range(10, 30)]
    # events.k8s.io writers fill eventTime / series instead of lastTimestamp
    mixed: list[dict[str, Any]] = [
        {"reason": "late", "series": {"lastObservedTime": "2030-01-01T11:30:00.000000Z"}},
        {"reason": "early", "eventTime": "2030-01-01T11:10:00.000000Z"},
    ]
    assert [e["reason"] for e in recent_events(mixed)] == ["early", "late"]


def sidecar_task(status: dict[str, Any], retries: int = 2) -> dict[str, Any]:
    obj = task_obj(status)
    obj["spec"] = {
        "steps": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "image": "busybox", "retries": retries},
        ],
        "sidecars": [{"name": "db", "image": "postgres"}, {"name": "proxy", "image": "envoy"}],
    }
    return obj


def test_describe_shows_sidecars_and_a_retried_step() -> None:
    status = {
        "status": "Failure",
        "podName": "build-pod",
        "steps": [
            {"name": "a", "state": "Terminated", "exitCode": 0},
            {
                "name": "b",
                "state": "Terminated",
                "exitCode": 1,
                "reason": "Error",
                "attempts": 3,
                "retriedExitCodes": [1, 1],
            },
        ],
        "sidecars": [
            {"name": "db", "state": "Running", "ready": True, "restarts": 2},
            {
                "name": "proxy",
                "state": "Terminated",
                "restarts": 0,
                "exitCode": 137,
                "reason": "OOMKilled",
                "message": "out of\nmemory",
            },
        ],
    }
    text = describe(decode_task(sidecar_task(status)), [], NOW)
    steps = text[text.index("Steps:\n") : text.index("Condition:\n")]
    assert steps == (
        "Steps:\n"
        "  STEP   STATE        EXIT   STARTED   DURATION   REASON\n"
        "  a      Terminated   0\n"
        "  b      Terminated   1                           "
        "Error (attempt 3 of 3, earlier exit codes 1, 1)\n"
        "Sidecars:\n"
        "  SIDECAR   STATE        READY   RESTARTS   EXIT   REASON\n"
        "  db        Running      true    2\n"
        "  proxy     Terminated   false   0          137    OOMKilled\n"
        "  proxy: out of memory\n"
    )


@pytest.mark.parametrize(
    ("step", "retries", "want"),
    [
        (
            {"attempts": 3, "retriedExitCodes": [1, 1]},
            2,
            "(attempt 3 of 3, earlier exit codes 1, 1)",
        ),
        ({"attempts": 2, "retriedExitCodes": [7]}, 5, "(attempt 2 of 6, earlier exit codes 7)"),
        ({"attempts": 3}, 2, "(attempt 3 of 3)"),  # the exit codes cut from the agent's state
        ({"attempts": 3, "retriedExitCodes": [1, 1]}, 0, "(attempt 3, earlier exit codes 1, 1)"),
        ({"attempts": 1}, 2, ""),
        ({}, 2, ""),
    ],
)
def test_describe_a_retried_step(step: dict[str, Any], retries: int, want: str) -> None:
    status = {"steps": [{"name": "b", "state": "Terminated", "exitCode": 0, **step}]}
    text = describe(decode_task(sidecar_task(status, retries)), [], NOW)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("  b ")]
    assert line.endswith(want)
    assert ("(attempt" in line) is bool(want)


@pytest.mark.parametrize(
    ("sidecars", "want"),
    [
        # before the first report: the spec's, waiting
        (
            None,
            ["db        Waiting   false   0", "proxy     Waiting   false   0"],
        ),
        (
            [
                {"name": "db", "state": "Waiting", "reason": "ErrImagePull", "message": "no"},
                {"name": "proxy", "state": "Running", "ready": False, "restarts": 1},
            ],
            [
                "db        Waiting   false   0                 ErrImagePull",
                "proxy     Running   false   1",
                "db: no",
            ],
        ),
    ],
)
def test_describe_sidecars(sidecars: list[dict[str, Any]] | None, want: list[str]) -> None:
    status = {"sidecars": sidecars} if sidecars else {}
    text = describe(decode_task(sidecar_task(status)), [], NOW)
    lines = text[text.index("Sidecars:\n") : text.index("Condition:\n")].splitlines()
    assert [ln.strip() for ln in lines[2:]] == want


def test_describe_without_sidecars_or_retried_steps_adds_nothing() -> None:
    for status in ({}, RUNNING):
        text = describe(decode_task(task_obj(status)), [], NOW)
        assert "Sidecars:" not in text
        assert "(attempt" not in text
