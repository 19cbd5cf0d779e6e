"""``taskflow-agent step``: wait for the previous step, run this one, record its state.

The thin shell around the pure parts (``_substitute``, ``_state``): it reads and writes the
run directory, waits, and spawns. Whatever happens, it ends by recording a state (``run_step``
catches everything): the next step must never wait forever, the operator must never be
left without an outcome.

    <run>/<prev>/state.json     appears when the previous step is done; we read it once
                                its agent has also released <run>/<prev>'s lock (_lock)
    <run>/<name>                locked by us from before the command until the state is in
    <run>/<name>/results/R      the step writes its results here ($(results.R.path))
    <run>/<name>/script         the script with its references substituted (when it has any)
    <run>/<name>/state.json     our state, written last, atomically: the next step starts
"""

from __future__ import annotations

import os
import time

from taskflow_agent import (
    _arch,
    _lock,
    _read,
    _signals,
    _state,
    _substitute,
    _supervise,
    _wait,
)
from taskflow_agent._args import RETRY_DELAY_MAX, StepArgs, print_error
from taskflow_agent._read import StepError
from taskflow_agent._results import clear, collect, read_reference
from taskflow_agent._state import State

STATE = "state.json"
SCRIPT_COPY = "script"


def run_step(args: StepArgs) -> int:
    """Run the step and record its state; the agent's exit code."""
    own = os.path.join(args.run_dir, args.name)
    results = os.path.join(own, "results")
    lock: int | None = None
    try:
        try:
            os.makedirs(results, exist_ok=True)
            lock = _lock.hold(own)
        except OSError as e:
            state = _failed(args.name, 1, f"cannot create {results}: {e.strerror}")
        except StepError as e:
            state = _failed(args.name, 1, str(e))
        else:
            state = _execute(args, own)
    except BaseException as e:  # the state must be written, whatever failed
        state = _failed(args.name, 1, f"the agent failed: {type(e).__name__}: {e}")
    return _record(args, own, state, lock)


def _record(args: StepArgs, own: str, state: State, lock: int | None) -> int:
    """Write the state, release the lock, then write the termination message; the exit
    code. If the state cannot be written the step has failed: the termination message says
    why."""
    state = _finish(args, state)
    if state.error is not None and not state.skipped:
        print_error(f"step {args.name}: {state.error}")
    data = _state.encode(state)
    code = exit_code(state)
    # The state first: the next step must not wait forever because of a termination
    # message we could not write (the kubelet reads that only after we exit).
    try:
        _state.write_atomic(os.path.join(own, STATE), data)
    except Exception as e:  # OSError, or anything: it is reported, not raised
        problem = f"cannot write the state: {e}"
        print_error(f"step {args.name}: {problem}")
        state.error = problem if state.error is None else f"{state.error}; {problem}"
        if state.skipped:  # it failed, whatever it was going to be: nothing follows it
            state.skipped = False
            state.started_at = state.finished_at = _state.timestamp(time.time_ns())
        state = _finish(args, state, abort=True)
        data = _state.encode(state)
        code = exit_code(state)
    if lock is not None:
        try:
            _lock.release(lock, own)
        except OSError as e:  # our exit releases it too: the next agent then polls it
            print_error(f"step {args.name}: cannot release {own}'s lock: {e}")
    if len(data) > args.message_limit:
        print_error(
            f"step {args.name}: its state is {len(data)} bytes, over --message-limit "
            f"{args.message_limit}: the kubelet will cut it"
        )
    if args.termination_path is not None:
        try:
            with open(args.termination_path, "wb") as f:
                f.write(data)
        except OSError as e:
            print_error(str(e))
            return code or 1
    return code


def _finish(args: StepArgs, state: State, *, abort: bool = False) -> State:
    if state.error is not None:
        state.error = _state.clip_error(state.error)
    state = _state.fit(state, limit=args.message_limit)
    state.abort = abort or state.skipped or (state.failed and args.on_error != "continue")
    return state


def exit_code(state: State) -> int:
    """The agent's exit code for ``state``: the step's code (1 when that is 0) when it
    failed and stops the Task; 0 otherwise (skipped, succeeded, or ``continue``)."""
    if state.failed and state.abort and not state.skipped:
        return state.exit_code or 1
    return 0


def _execute(args: StepArgs, own: str) -> State:
    """Wait, then run the command; every outcome as a State (abort is set by the caller)."""
    if args.prev is not None:
        try:
            signum = _wait.wait_for(
                os.path.join(args.run_dir, args.prev),
                STATE,
                mode=args.wait,
                poll_interval=args.poll_interval,
            )
            if signum:
                return _interrupted(args.name, signum)
            if _read_prev(args).abort:
                return State(args.name, skipped=True)
        except (StepError, OSError) as e:  # e.g. the previous state is unreadable
            return _failed(args.name, 1, str(e))
    try:
        argv, env = _prepare(args, own)
    except (StepError, OSError) as e:
        return _failed(args.name, 1, str(e))
    # The hand-over: a signal that came after the wait (the pod is going away) is taken
    # here, before the command exists, rather than forwarded to a command just started.
    signum = _signals.take_forwarded()
    if signum:
        return _interrupted(args.name, signum)
    return _run(args, argv, env)


def _run(args: StepArgs, argv: list[bytes], env: dict[bytes, bytes]) -> State:
    """Run the command, again after a failure (non-zero or timed out) up to ``--retries``
    more times, in the same container: the workspace is kept, the results are cleared.
    Each attempt ends as a step does (``_supervise.run`` stops and reaps all of it); the
    state is the last attempt's, with the count and the earlier exit codes. A signal stops
    the retries: forwarded to an attempt, that attempt is the last; between two, it ends
    the wait at once."""
    codes: list[int] = []  # of the attempts that were retried
    first_ns = 0
    stopped: str | None = None
    while True:
        attempt = len(codes) + 1
        try:
            out = _supervise.run(argv, env, timeout=args.timeout, grace=args.grace)
        except _supervise.SpawnError as e:
            return _retried(_failed(args.name, e.exit_code, str(e)), codes, first_ns)
        first_ns = first_ns or out.started_ns
        if (
            (out.exit_code == 0 and not out.timed_out)
            or out.signalled
            or len(codes) == args.retries
        ):
            break
        delay = retry_delay(args.retry_delay, attempt)
        how = f"timed out after {_show(args.timeout)}" if out.timed_out else "failed"
        print_error(
            f"step {args.name} attempt {attempt} {how} (exit {out.exit_code}); retrying in "
            f"{_show(delay)} (attempt {attempt + 1} of {args.retries + 1})"
        )
        signum = _signals.wait(delay)
        if signum:
            stopped = (
                f"{_signals.name(signum)} while waiting to retry (attempt {attempt + 1} of "
                f"{args.retries + 1} did not start)"
            )
            break
        try:
            clear(args.run_dir, args.name)
        except OSError as e:
            why = f"cannot clear its results before attempt {attempt + 1}: {e}"
            return _retried(_failed(args.name, out.exit_code or 1, why), codes, first_ns)
        codes.append(out.exit_code)
    state = State(
        args.name,
        exit_code=out.exit_code,
        started_at=_state.timestamp(first_ns),
        finished_at=_state.timestamp(out.finished_ns),
        timed_out=out.timed_out,
        attempts=len(codes) + 1,
        retried_exit_codes=codes,
    )
    if out.timed_out:
        state.error = f"timed out after {_show(args.timeout)}"
    # Read only now: every process of the step is gone, nothing can change them any more.
    state.results, problem, too_large = collect(
        args.run_dir, args.name, args.results, args.message_limit
    )
    state.error = "; ".join(e for e in (state.error, stopped, problem) if e) or None
    if too_large:  # as _state.fit does for results that are too large together
        state.results = []
        state.exit_code = state.exit_code or 1
    return state


def retry_delay(base: float, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first): ``base`` doubled each
    time, at most RETRY_DELAY_MAX."""
    return min(base * 2.0 ** (retry - 1), RETRY_DELAY_MAX)


def _retried(state: State, codes: list[int], first_ns: int) -> State:
    """``state`` of a step whose command already ran ``len(codes)`` times."""
    state.attempts = len(codes) + 1
    state.retried_exit_codes = codes
    if first_ns:
        state.started_at = _state.timestamp(first_ns)
    return state


def _interrupted(name: str, signum: int) -> State:
    """The pod is going away before our turn: recorded, so that no later step waits on us."""
    return State(name, skipped=True, error=f"{_signals.name(signum)} before the step started")


def _failed(name: str, exit_code: int, error: str) -> State:
    """A step that failed before its command ran (it "ran" for no time, now)."""
    now = _state.timestamp(time.time_ns())
    return State(name, exit_code=exit_code, started_at=now, finished_at=now, error=error)


def _read_prev(args: StepArgs) -> State:
    assert args.prev is not None
    limit = max(args.message_limit, _state.TERMINATION_LIMIT)
    try:
        data = _read.read(args.run_dir, (args.prev, STATE), limit)
    except _read.TooLarge as e:
        raise StepError(f"{e}, larger than any step state ({limit} bytes)") from None
    try:
        return _state.decode(data)
    except ValueError as e:
        raise StepError(f"{os.path.join(args.run_dir, args.prev, STATE)}: {e}") from None


def _prepare(args: StepArgs, own: str) -> tuple[list[bytes], dict[bytes, bytes]]:
    """The argv and environment to run, references substituted; the script copied when
    it has references."""
    picked = _machine_argv(args)
    env = dict(os.environb)
    script: bytes | None = None
    if args.script is not None:
        with open(args.script, "rb") as f:
            script = f.read()
    limit = max(args.message_limit, _state.TERMINATION_LIMIT)
    refs = _substitute.references([*picked, *env.values(), *([script] if script else [])])
    values = {ref: read_reference(args.run_dir, *ref, limit=limit) for ref in refs}
    # argv and the environment are C strings: a NUL byte would cut a value short (and
    # posix_spawn refuses it). Checked per reference, so the error names the one at fault.
    for ref in _substitute.references([*picked, *env.values()]):
        if b"\0" in values[ref]:
            raise StepError(
                f"$(steps.{ref[0]}.results.{ref[1]}): the value has a NUL byte, which an "
                "argument or an environment variable cannot hold"
            )

    def value(step: str, result: str) -> bytes:
        return values[(step, result)]

    argv = [_substitute.substitute(a, value) for a in picked]
    if refs:
        env = {k: _substitute.substitute(v, value) for k, v in env.items()}
    if args.script is not None:
        program = os.fsencode(args.script)
        if script is not None and _substitute.references([script]):
            copy = os.path.join(own, SCRIPT_COPY)
            _state.write_atomic(copy, _substitute.substitute(script, value), mode=0o700)
            program = os.fsencode(copy)
        argv = [program, *argv]
    return argv, env


def _machine_argv(args: StepArgs) -> list[bytes]:
    """This machine's argv: ``args.argv`` is left as parsed, so the args stay what the
    command line said (one argv per platform when the image has several)."""
    if not args.arches:
        return args.argv
    mine = _arch.machine_platform()
    picked = _arch.select(args.arches, args.argv, mine)
    if picked is None:
        have = ", ".join(p for p, _ in args.arches)
        raise StepError(f"the image has no command for this machine ({mine}); it has {have}")
    return picked


def _show(seconds: float | None) -> str:
    return f"{seconds:g}s"
