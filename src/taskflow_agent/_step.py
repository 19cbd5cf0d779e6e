"""``taskflow-agent step``: wait for the previous step, run this one, record its state.

The thin shell around the pure parts (``_substitute``, ``_state``): it reads and writes the
run directory, waits, and spawns.

    <run>/<prev>/state.json     appears when the previous step is done (we wait for it)
    <run>/<name>/results/R      the step writes its results here ($(results.R.path))
    <run>/<name>/script         the script with its references substituted (when it has any)
    <run>/<name>/state.json     our state, written last, atomically: the next step starts
"""

from __future__ import annotations

import errno
import os
import stat
import time

from taskflow_agent import _arch, _state, _substitute, _supervise, _wait
from taskflow_agent._state import State
from taskflow_agent.cli import StepArgs, fatal

STATE = "state.json"
SCRIPT_COPY = "script"


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StepError(Exception):
    """The step failed before or after its command: the message goes into ``error``."""


def run_step(args: StepArgs) -> int:
    own = os.path.join(args.run_dir, args.name)
    os.makedirs(os.path.join(own, "results"), exist_ok=True)
    state = _execute(args, own)
    if state.error is not None:
        state.error = _state.clip_error(state.error)
    state = _state.fit(state)
    state.abort = state.skipped or (state.failed and args.on_error != "continue")
    if state.error is not None and not state.skipped:
        fatal(f"step {args.name}: {state.error}")
    data = _state.encode(state)
    # The state first: the next step must not wait forever because of a termination
    # message we could not write (the kubelet reads that only after we exit).
    _state.write_atomic(os.path.join(own, STATE), data)
    if args.termination_path is not None:
        with open(args.termination_path, "wb") as f:
            f.write(data)
    if state.failed and not state.skipped and args.on_error == "stopAndFail":
        return state.exit_code or 1
    return 0


def _execute(args: StepArgs, own: str) -> State:
    """Wait, then run the command; every outcome as a State (abort is set by the caller)."""
    late: list[int] = []  # signals that came after the wait, before they were blocked
    handlers = _raise_on_signals(late)
    try:
        prev = _wait_prev(args) if args.prev is not None else None
    except _Interrupted as e:
        # The pod is going away before our turn: record that, so no later step waits on us.
        name = _supervise.NAMES.get(e.signum, str(e.signum))
        return State(args.name, skipped=True, error=f"{name} before the step started")
    except OSError as e:  # the previous state is unreadable: fail here, visibly
        return _failed(args.name, 1, str(e))
    finally:
        late.append(0)  # from here on the handler records instead of raising
        # Blocked before the handlers go: a signal now waits for the supervisor (which
        # forwards it to the child), none is lost or kills us with no state written.
        _supervise.block_signals()
        _supervise.restore_handlers(handlers)
    if prev is not None and prev.abort:
        return State(args.name, skipped=True)
    try:
        argv, env = _prepare(args, own)
    except (StepError, OSError) as e:
        return _failed(args.name, 1, str(e))
    try:
        out = _supervise.run(
            argv, env, timeout=args.timeout, grace=args.grace, forward_at_start=late[1:]
        )
    except _supervise.SpawnError as e:
        return _failed(args.name, e.exit_code, str(e))
    state = State(
        args.name,
        exit_code=out.exit_code,
        started_at=_state.timestamp(out.started_ns),
        finished_at=_state.timestamp(out.finished_ns),
        timed_out=out.timed_out,
    )
    if out.timed_out:
        state.error = f"timed out after {_show(args.timeout)}"
    state.results, problem, too_large = _collect(own, args.results)
    state.error = state.error or problem
    if too_large:  # as _state.fit does for results that are too large together
        state.results = []
        state.exit_code = 1
    return state


def _failed(name: str, exit_code: int, error: str) -> State:
    """A step that failed before its command ran (it "ran" for no time, now)."""
    now = _state.timestamp(time.time_ns())
    return State(name, exit_code=exit_code, started_at=now, finished_at=now, error=error)


def _raise_on_signals(late: list[int]) -> _supervise.Handlers:
    """While we wait, a forwarded signal ends the wait (as PID 1 we would ignore it). Once
    ``late`` is not empty the wait is over: a signal is appended to it instead."""

    def handler(signum: int, frame: object) -> None:
        if late:
            late.append(signum)
        else:
            raise _Interrupted(signum)

    return _supervise.set_handlers(handler)


def _wait_prev(args: StepArgs) -> State:
    assert args.prev is not None
    path = os.path.join(args.run_dir, args.prev, STATE)
    _wait.wait_for(path, mode=args.wait, poll_interval=args.poll_interval)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _state.decode(data)
    except ValueError as e:
        raise OSError(f"{path}: {e}") from None


def _prepare(args: StepArgs, own: str) -> tuple[list[bytes], dict[bytes, bytes]]:
    """The argv and environment to run, references substituted; the script copied when
    it has references."""
    if args.arches:
        mine = _arch.machine_platform()
        picked = _arch.select(args.arches, args.argv, mine)
        if picked is None:
            have = ", ".join(p for p, _ in args.arches)
            raise StepError(f"the image has no command for this machine ({mine}); it has {have}")
        args.argv = picked
    env = dict(os.environb)
    script: bytes | None = None
    if args.script is not None:
        with open(args.script, "rb") as f:
            script = f.read()
    chunks = [*args.argv, *env.values(), *([script] if script is not None else [])]
    refs = _substitute.references(chunks)
    values = {ref: _read_result(args.run_dir, *ref) for ref in refs}

    def value(step: str, result: str) -> bytes:
        return values[(step, result)]

    argv = [_substitute.substitute(a, value) for a in args.argv]
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


def _read_result(run_dir: str, step: str, result: str) -> bytes:
    step_dir = os.path.join(run_dir, step)
    if not os.path.exists(os.path.join(step_dir, STATE)):
        raise StepError(
            f"$(steps.{step}.results.{result}): step {step!r} has not run before this step"
        )
    path = os.path.join(step_dir, "results", result)
    try:
        return read_result_file(path)
    except FileNotFoundError:
        raise StepError(
            f"$(steps.{step}.results.{result}): step {step!r} did not write result "
            f"{result!r} ({path} is missing)"
        ) from None
    except StepError as e:
        raise StepError(f"$(steps.{step}.results.{result}): {e}") from None


class TooLarge(StepError):
    """A result file that cannot fit in a termination message."""


def read_result_file(path: str) -> bytes:
    """A result file's bytes. Only a regular file, not through a symlink, at most the
    termination message's size: a step must not make a later step's agent read that
    step's own files (a symlink planted in the shared volume), block on a FIFO, or load a
    huge file; StepError says which. FileNotFoundError when absent."""
    limit = _state.TERMINATION_LIMIT
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StepError(f"{path} is a symbolic link, not a file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StepError(f"{path} is not a regular file")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(
            f"{path} is {max(st.st_size, len(data))} bytes; a step's results must fit in "
            f"{limit} bytes with the status fields"
        )
    return data


def _collect(own: str, names: list[str]) -> tuple[list[tuple[str, str]], str | None, bool]:
    """The declared results the step wrote, what is wrong with the others, and whether one
    is too large for any termination message."""
    results = []
    missing = []
    problems = []
    too_large = False
    for name in names:
        path = os.path.join(own, "results", name)
        try:
            data = read_result_file(path)
        except FileNotFoundError:
            missing.append(name)
            continue
        except (StepError, OSError) as e:
            problems.append(f"result {name!r}: {e}")
            too_large = too_large or isinstance(e, TooLarge)
            continue
        try:
            results.append((name, data.decode()))
        except UnicodeDecodeError:
            problems.append(f"result {name!r} is not UTF-8 text")
    if missing:
        problems.append(
            f"result(s) {', '.join(missing)} not written (the step writes "
            f"$(results.NAME.path) = {os.path.join(own, 'results', 'NAME')})"
        )
    return results, "; ".join(problems) or None, too_large


def _show(seconds: float | None) -> str:
    return f"{seconds:g}s"
