"""Which step's log to read next (pure): the state machine behind ``logs`` and ``logs -f``.

The driver (:mod:`taskflow.ctl._logs`) keeps the latest Task and a :class:`Cursor`, asks
:func:`decide` what to do, does it, and moves the cursor with :func:`advance` or
:func:`after_stream`. Steps are handled strictly in spec order, one stream at a time: a step
that starts while the previous step's stream still drains waits for that stream to end, so
lines never interleave. Under the agent executor every step container runs from the start
but its step only counts as started when its command runs, so the rule is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from taskflow.api import task_status
from taskflow.ctl._model import STARTED, Attempt, TaskView, attempt_of
from taskflow.status import REASON_PENDING, REASON_RUNNING


@dataclass(frozen=True)
class Cursor:
    attempt: int  #: the attempt whose steps are read
    index: int = 0  #: the next step of that attempt to handle
    pod_gone: bool = False  #: its pod answered 404: no later step of it can be read


@dataclass(frozen=True)
class Options:
    follow: bool = False
    step: str | None = None  #: read only this step
    pinned: bool = False  #: --attempt given: stay on cursor.attempt


@dataclass(frozen=True)
class Stream:
    """Read the log of container ``step`` in ``pod``; ``follow``: until the container ends."""

    pod: str
    step: str
    follow: bool


@dataclass(frozen=True)
class Skip:
    """Go on to the next step; ``note`` (if any) says why this one has no log."""

    step: str
    note: str | None


@dataclass(frozen=True)
class NextAttempt:
    """The Task was retried: go on with attempt ``number``."""

    number: int
    note: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do until the Task changes; ``note`` says what for ("" = nothing to say)."""

    note: str


@dataclass(frozen=True)
class Finish:
    attempt: Attempt | None  #: what the summary describes (None: nothing to summarise)
    code: int  #: the exit code
    note: str | None = None


Action = Stream | Skip | NextAttempt | Wait | Finish


class Ended(Enum):
    """How a log stream ended."""

    DRAINED = "drained"  #: the server closed it (the container ended, or no follow)
    POD_GONE = "pod_gone"  #: 404: the pod does not exist (any more)
    NO_LOG = "no_log"  #: 400: the container has no log (it never ran)


def exit_code(attempt: Attempt) -> int:
    """0 only for a Task that ended Successful."""
    return 0 if attempt.final and attempt.word == task_status.SUCCESSFUL else 1


def decide(task: TaskView, cur: Cursor, opts: Options) -> Action:
    att = attempt_of(task, cur.attempt)
    if att is None:
        if cur.attempt > task.current_attempt and not task.final and opts.follow:
            return Wait(f"waiting for attempt {cur.attempt} (now {task.current_attempt})")
        return Finish(None, 1, f"task/{task.name} has no attempt {cur.attempt}")
    if cur.index < len(att.steps):
        step = att.steps[cur.index]
        if opts.step is not None and step.name != opts.step:
            return Skip(step.name, None)
        if step.state in STARTED:
            if cur.pod_gone or att.pod is None:
                return Skip(step.name, None)  # the driver said once that the pod is gone
            follow = opts.follow and step.state == task_status.STEP_RUNNING and not att.final
            return Stream(att.pod, step.name, follow)
        if step.state == task_status.STEP_NOT_RUN:
            return Skip(step.name, _not_run_note(step.name, step.reason))
        if att.final:  # Waiting in a finished attempt: it never started
            return Skip(step.name, _never_started_note(step.name, step.reason, step.message))
        if not opts.follow:
            return Finish(att, 0)  # what exists is printed; the rest is still to come
        return Wait(_waiting_note(task, att, step.name, step.reason, step.message))
    # every step of this attempt is handled
    if cur.attempt < task.current_attempt and not opts.pinned:
        nxt = cur.attempt + 1
        pod = attempt_of(task, nxt)
        where = f" (pod {pod.pod})" if pod is not None and pod.pod else ""
        return NextAttempt(nxt, f"task/{task.name} is retried: attempt {nxt}{where}")
    if att.final or not opts.follow:
        return Finish(att, exit_code(att) if att.final else 0)
    # the last stream ended before the Task's status caught up with its end
    return Wait("")


def advance(cur: Cursor) -> Cursor:
    """After a Skip."""
    return replace(cur, index=cur.index + 1)


def next_attempt(cur: Cursor, number: int) -> Cursor:
    return Cursor(attempt=number)


def after_stream(cur: Cursor, ended: Ended) -> Cursor:
    """After a Stream. A drained follow stream counts as the whole step even when the Task
    does not say yet that the step ended: the kubelet closes it when the container ends."""
    return replace(cur, index=cur.index + 1, pod_gone=cur.pod_gone or ended is Ended.POD_GONE)


def _not_run_note(name: str, reason: str | None) -> str:
    why = f" ({reason})" if reason else " (an earlier step failed)"
    return f"step {name} did not run{why}"


def _never_started_note(name: str, reason: str | None, message: str | None) -> str:
    if reason:
        return f"step {name} never started: {reason}" + (f": {message}" if message else "")
    return f"step {name} never started"


def _waiting_note(
    task: TaskView, att: Attempt, name: str, reason: str | None, message: str | None
) -> str:
    """What the follower waits for and, when known, what holds it up (the step's own
    reason, else the Task's: Unschedulable, FailedCreate, ImagePullBackOff...)."""
    if not reason:
        cond = task.status.condition()
        if cond is not None and cond.reason not in (None, "", REASON_PENDING, REASON_RUNNING):
            reason, message = cond.reason, cond.message
    why = ""
    if reason:
        why = f" ({reason}: {message})" if message else f" ({reason})"
    if att.pod is None:
        return f"waiting for the pod of task/{task.name}{why}"
    return f"waiting for step {name} to start{why}"
