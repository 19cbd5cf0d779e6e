"""The step-order state machine of ``kubectl taskflow logs`` (pure, table cases)."""

from __future__ import annotations

from typing import Any

import pytest

from taskflow.ctl import _follow as fsm
from taskflow.ctl._model import TaskView, attempt_of, decode_task

STEPS = ("a", "b", "c")
R, T, W, N = "Running", "Terminated", "Waiting", "NotRun"
FOLLOW = fsm.Options(follow=True)
ONCE = fsm.Options(follow=False)


def step(name: str, state: str, code: int | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "state": state, **extra}
    if code is not None:
        out["exitCode"] = code
    return out


def task(
    word: str | None,
    states: tuple[str, ...] = (),
    *,
    pod: str | None = "t-pod",
    reason: str | None = None,
    message: str | None = None,
    **status: Any,
) -> TaskView:
    """Task "t" with steps a, b, c; ``states`` gives the first steps' states (T = exit 0)."""
    st: dict[str, Any] = dict(status)
    if word is not None:
        st["status"] = word
    if pod is not None:
        st["podName"] = pod
    if states:
        st["steps"] = [
            step(n, s, 0 if s == T else None) for n, s in zip(STEPS, states, strict=False)
        ]
    if reason is not None:
        st["conditions"] = [
            {"type": "Succeeded", "status": "Unknown", "reason": reason, "message": message}
        ]
    return decode_task(
        {
            "metadata": {"name": "t", "namespace": "ns"},
            "spec": {"steps": [{"name": n, "image": "busybox"} for n in STEPS]},
            "status": st,
        }
    )


def cur(index: int = 0, attempt: int = 1, gone: bool = False) -> fsm.Cursor:
    return fsm.Cursor(attempt=attempt, index=index, pod_gone=gone)


@pytest.mark.parametrize(
    ("view", "cursor", "opts", "want"),
    [
        # nothing created yet: wait for the pod, saying why when the Task says why
        (task(None, pod=None), cur(), FOLLOW, fsm.Wait("waiting for the pod of task/t")),
        (
            task("Pending", pod=None, reason="FailedCreate", message="quota"),
            cur(),
            FOLLOW,
            fsm.Wait("waiting for the pod of task/t (FailedCreate: quota)"),
        ),
        (
            task("Pending", (W, W, W), reason="Unschedulable", message="0/1 nodes"),
            cur(),
            FOLLOW,
            fsm.Wait("waiting for step a to start (Unschedulable: 0/1 nodes)"),
        ),
        (
            task("Pending", (W, W, W), reason="Pending"),
            cur(),
            FOLLOW,
            fsm.Wait("waiting for step a to start"),
        ),
        # a running step is followed; a finished one is read whole
        (task("Running", (R, W, W)), cur(), FOLLOW, fsm.Stream("t-pod", "a", True)),
        (task("Running", (T, R, W)), cur(), FOLLOW, fsm.Stream("t-pod", "a", False)),
        (task("Running", (T, R, W)), cur(1), FOLLOW, fsm.Stream("t-pod", "b", True)),
        # without -f nothing is followed, and a step still to come ends the command
        (task("Running", (R, W, W)), cur(), ONCE, fsm.Stream("t-pod", "a", False)),
        (task("Running", (T, W, W)), cur(1), ONCE, "finish 0"),
        # the stream of b drained before the Task says b ended: wait for c, do not skip it
        (task("Running", (T, R, W)), cur(2), FOLLOW, fsm.Wait("waiting for step c to start")),
        # a final Task: the rest is read whole, never-run steps are named
        (task("Successful", (T, T, T)), cur(2), FOLLOW, fsm.Stream("t-pod", "c", False)),
        (task("Successful", (T, T, T)), cur(3), FOLLOW, "finish 0"),
        (task("Failure", (T, T, T)), cur(3), FOLLOW, "finish 1"),
        (task("Cancelled", (T, R, W)), cur(1), FOLLOW, fsm.Stream("t-pod", "b", False)),
        (task("Cancelled", (T, T, W)), cur(3), FOLLOW, "finish 1"),
        (
            task("Failure", (T, T, N)),
            cur(2),
            FOLLOW,
            fsm.Skip("c", "step c did not run (an earlier step failed)"),
        ),
        # a step that never starts (image never pulled): named once the Task is final
        (
            task("Failure", (T, W, W)),
            cur(1),
            FOLLOW,
            fsm.Skip("b", "step b never started"),
        ),
        # the last stream ended but the Task's status lags: wait silently
        (task("Running", (T, T, T)), cur(3), FOLLOW, fsm.Wait("")),
        (task("Running", (T, T, T)), cur(3), ONCE, "finish 0"),
        # the pod is gone: later started steps have no log to read, no second note
        (task("Running", (T, R, W)), cur(1, gone=True), FOLLOW, fsm.Skip("b", None)),
        (
            task("Failure", (T, W, W)),
            cur(1, gone=True),
            FOLLOW,
            fsm.Skip("b", "step b never started"),
        ),
        # --step: the other steps pass silently
        (
            task("Running", (R, W, W)),
            cur(),
            fsm.Options(follow=True, step="b"),
            fsm.Skip("a", None),
        ),
        (
            task("Running", (T, R, W)),
            cur(1),
            fsm.Options(follow=True, step="b"),
            fsm.Stream("t-pod", "b", True),
        ),
    ],
)
def test_decide(view: TaskView, cursor: fsm.Cursor, opts: fsm.Options, want: object) -> None:
    got = fsm.decide(view, cursor, opts)
    if isinstance(want, str):
        assert isinstance(got, fsm.Finish), got
        assert f"finish {got.code}" == want
        assert got.attempt is not None
    else:
        assert got == want


def test_a_step_with_a_reason_says_it_while_waiting() -> None:
    view = decode_task(
        {
            "metadata": {"name": "t"},
            "spec": {"steps": [{"name": "a"}]},
            "status": {
                "status": "Pending",
                "podName": "p",
                "steps": [{"name": "a", "state": W, "reason": "ImagePullBackOff", "message": "x"}],
            },
        }
    )
    assert fsm.decide(view, cur(), FOLLOW) == fsm.Wait(
        "waiting for step a to start (ImagePullBackOff: x)"
    )


def run(
    views: list[TaskView],
    opts: fsm.Options = FOLLOW,
    streams: dict[str, fsm.Ended] | None = None,
    max_steps: int = 50,
    changes_while_streaming: bool = False,
) -> tuple[list[str], int]:
    """Drive the machine like the real driver does: each Wait consumes the next Task version
    (with ``changes_while_streaming`` each Stream does too: the Task changed while a stream
    was open), each Stream ends as ``streams`` says (drained by default). Returns the trace
    and the exit code."""
    trace: list[str] = []
    pending = list(views)
    view = pending.pop(0)
    c = fsm.Cursor(attempt=view.current_attempt)
    for _ in range(max_steps):
        a = fsm.decide(view, c, opts)
        if isinstance(a, fsm.Stream):
            ended = (streams or {}).get(a.step, fsm.Ended.DRAINED)
            trace.append(f"stream {a.pod}/{a.step}{' -f' if a.follow else ''}")
            c = fsm.after_stream(c, ended)
            if changes_while_streaming and pending:
                view = pending.pop(0)
        elif isinstance(a, fsm.Skip):
            if a.note:
                trace.append(a.note)
            c = fsm.advance(c)
        elif isinstance(a, fsm.NextAttempt):
            trace.append(a.note)
            c = fsm.next_attempt(c, a.number)
        elif isinstance(a, fsm.Wait):
            if not pending:
                raise AssertionError(f"waits with no more versions: {trace} {a}")
            view = pending.pop(0)
        else:
            return trace, a.code
    raise AssertionError(f"no end: {trace}")


def test_step_starting_while_the_previous_stream_drains_comes_after_it() -> None:
    # b started while a's stream was still open (draining): b is followed only after a's
    # stream ended; c started and even ended while b's was open: read whole after it
    trace, code = run(
        [
            task("Running", (R, W, W)),
            task("Running", (T, R, W)),
            task("Successful", (T, T, T)),
        ],
        changes_while_streaming=True,
    )
    assert trace == ["stream t-pod/a -f", "stream t-pod/b -f", "stream t-pod/c"]
    assert code == 0


def test_the_task_changing_only_between_streams() -> None:
    # a drained, the Task does not say yet that b started: wait for it, then follow it
    trace, code = run(
        [
            task("Running", (R, W, W)),
            task("Running", (T, T, R)),
            task("Successful", (T, T, T)),
        ]
    )
    assert trace == ["stream t-pod/a -f", "stream t-pod/b", "stream t-pod/c -f"]
    assert code == 0


def test_whole_run_from_pending_in_spec_order() -> None:
    trace, code = run(
        [
            task("Pending", pod=None),
            task("Pending", (W, W, W)),
            task("Running", (R, W, W)),
            task("Running", (T, R, W)),
            task("Running", (T, T, R)),
            task("Failure", (T, T, T)),
        ]
    )
    assert trace == ["stream t-pod/a -f", "stream t-pod/b -f", "stream t-pod/c -f"]
    assert code == 1


def test_pod_deleted_mid_stream() -> None:
    trace, code = run(
        [
            task("Running", (T, R, W)),
            task("Failure", (T, T, W), reason="PodDeleted"),
        ],
        streams={"b": fsm.Ended.POD_GONE},
    )
    # a read whole; b's stream hits the 404; c never started, and the Task says why
    assert trace == ["stream t-pod/a", "stream t-pod/b -f", "step c never started"]
    assert code == 1


def test_pod_gone_before_reading_a_finished_task() -> None:
    trace, code = run([task("Successful", (T, T, T))], streams={"a": fsm.Ended.POD_GONE})
    assert trace == ["stream t-pod/a"]  # b and c are not asked for again
    assert code == 0


def test_step_that_never_starts_then_task_fails() -> None:
    trace, code = run(
        [
            task("Running", (T, W, W)),
            task("Running", (T, W, W)),
            task("Failure", (T, W, N)),
        ]
    )
    assert trace == [
        "stream t-pod/a",
        "step b never started",
        "step c did not run (an earlier step failed)",
    ]
    assert code == 1


def retried(current: int, word: str, states: tuple[str, ...]) -> TaskView:
    return task(
        word,
        states,
        pod=f"t-pod-{current}",
        attempt=current,
        attempts=[
            {
                "attempt": n,
                "podName": f"t-pod-{n}",
                "reason": "StepFailed",
                "message": "step b exited with code 1",
                "startTime": "2030-01-01T00:00:00Z",
                "completionTime": "2030-01-01T00:01:05Z",
                "steps": [step("a", T, 0), step("b", T, 1), step("c", N)],
            }
            for n in range(1, current)
        ],
    )


def test_retry_goes_on_with_the_next_attempt() -> None:
    first = task("Running", (T, R, W))
    trace, code = run(
        [
            first,
            retried(2, "Running", (R, W, W)),
            retried(2, "Successful", (T, T, T)),
        ],
    )
    assert trace == [
        "stream t-pod/a",
        "stream t-pod/b -f",
        # the record of attempt 1 says c did not run; then attempt 2 from its first step
        "step c did not run (an earlier step failed)",
        "task/t is retried: attempt 2 (pod t-pod-2)",
        "stream t-pod-2/a -f",
        "stream t-pod-2/b",
        "stream t-pod-2/c",
    ]
    assert code == 0


def test_pinned_earlier_attempt_is_read_whole_and_fails() -> None:
    view = retried(3, "Running", (R, W, W))
    c = fsm.Cursor(attempt=1)
    opts = fsm.Options(follow=True, pinned=True)
    assert fsm.decide(view, c, opts) == fsm.Stream("t-pod-1", "a", False)
    c = fsm.Cursor(attempt=1, index=3)
    end = fsm.decide(view, c, opts)
    assert isinstance(end, fsm.Finish)
    assert end.code == 1
    assert end.attempt is not None
    assert (end.attempt.pod, end.attempt.reason, end.attempt.duration) == (
        "t-pod-1",
        "StepFailed",
        "1m5s",
    )


def test_unknown_attempt() -> None:
    view = task("Successful", (T, T, T))
    end = fsm.decide(view, fsm.Cursor(attempt=2), fsm.Options(follow=True, pinned=True))
    assert end == fsm.Finish(None, 1, "task/t has no attempt 2")
    waiting = fsm.decide(
        task("Running", (R, W, W)), fsm.Cursor(attempt=2), fsm.Options(follow=True, pinned=True)
    )
    assert waiting == fsm.Wait("waiting for attempt 2 (now 1)")


def test_attempt_of_merges_spec_and_status() -> None:
    view = task("Running", (T,))
    att = attempt_of(view, 1)
    assert att is not None
    assert [(s.name, s.state) for s in att.steps] == [("a", T), ("b", W), ("c", W)]
    assert attempt_of(view, 2) is None
    assert attempt_of(view, 0) is None


def test_exit_code_only_zero_for_successful() -> None:
    for word, code in [("Successful", 0), ("Failure", 1), ("Cancelled", 1)]:
        att = attempt_of(task(word, (T, T, T)), 1)
        assert att is not None
        assert fsm.exit_code(att) == code
    running = attempt_of(task("Running", (R,)), 1)
    assert running is not None
    assert fsm.exit_code(running) == 1
