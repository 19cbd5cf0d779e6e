"""Run the step's command as our child and supervise it as PID 1 of the container would.

- PATH lookup as execvp does, with the child's PATH (``lookpath``), then ``posix_spawn``
  with the exact argv and environment, our stdin/stdout/stderr, default signal dispositions
  and an empty signal mask (Python ignores SIGPIPE/SIGXFSZ; the child must not inherit it).
- SIGTERM/SIGINT/SIGHUP/SIGQUIT are forwarded to the child. They and SIGCHLD are blocked
  (``_signals``) and taken with ``sigtimedwait``, so a signal cannot be lost between two
  checks and nothing runs in a handler.
- Every child that exits is reaped (orphans of the step's processes are re-parented to us as
  PID 1); the step's command's status is kept.
- A timeout sends SIGTERM, then SIGKILL after the grace period.
- Once the command has exited, nothing of the step may outlive it (``_stop_the_rest``): as
  PID 1 every other process of the container is killed and reaped; otherwise the command's
  process group (the child is spawned as its leader).
"""

from __future__ import annotations

import errno
import os
import time

from taskflow_agent import _signals

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping, Sequence
else:
    import _signal as signal

FORWARDED = _signals.FORWARDED
_WAITED = (*FORWARDED, signal.SIGCHLD)
# Reset to SIG_DFL in the child: what we (or Python) may have changed.
_DEFAULTED = (*_signals.BLOCKED, signal.SIGPIPE, signal.SIGXFSZ)
# glibc's execvp uses this when PATH is unset (confstr(_CS_PATH)).
DEFAULT_PATH = b"/bin:/usr/bin"
# Not PID 1: how long to wait for the killed process group to be gone.
GROUP_GONE_WITHIN = 5.0


class SpawnError(Exception):
    """The command could not be started; ``exit_code`` is what a shell would report
    (127 not found, 126 found but not executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Outcome:
    __slots__ = ("exit_code", "finished_ns", "signalled", "started_ns", "timed_out")

    def __init__(
        self, exit_code: int, started_ns: int, finished_ns: int, timed_out: bool, signalled: int
    ):
        self.exit_code = exit_code
        self.started_ns = started_ns
        self.finished_ns = finished_ns
        self.timed_out = timed_out
        #: the first signal forwarded to the command (the pod is stopping), else 0
        self.signalled = signalled


def lookpath(name: bytes, path: bytes | None) -> bytes:
    """The file execvp(3) would run for ``name`` with PATH ``path``: ``name`` itself when it
    has a '/', else the first executable regular file in PATH's directories (an empty entry
    is the working directory). SpawnError when there is none."""
    if b"/" in name:
        return name
    if not name:
        raise SpawnError("the command is empty", 127)
    denied: bytes | None = None
    for directory in (DEFAULT_PATH if path is None else path).split(b":"):
        candidate = os.path.join(directory or b".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) != 0o100000:
            continue
        if os.access(candidate, os.X_OK):
            return candidate
        denied = denied or candidate
    if denied is not None:
        raise SpawnError(f"{os.fsdecode(denied)}: permission denied", 126)
    shown = os.fsdecode(DEFAULT_PATH if path is None else path)
    raise SpawnError(f"{os.fsdecode(name)}: not found in PATH ({shown})", 127)


def run(
    argv: Sequence[bytes],
    env: Mapping[bytes, bytes],
    *,
    timeout: float | None,
    grace: float,
) -> Outcome:
    """Spawn ``argv`` (argv[0] looked up in ``env``'s PATH), supervise it until it exits,
    then stop whatever else of the step still runs. ``_signals.block()`` must have been
    called. Raises SpawnError; on any other error the child is killed before it goes up."""
    program = lookpath(argv[0], env.get(b"PATH"))
    pid1 = os.getpid() == 1
    started_ns = time.time_ns()
    try:
        pid = _spawn(program, argv, env, pid1)
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise SpawnError(f"cannot run {os.fsdecode(program)}: {e.strerror}", code) from None
    try:
        timed_out, signalled = _supervise(pid, timeout, grace)
        finished_ns = time.time_ns()
    finally:
        # Also when supervising failed: the child (and the rest) never outlive us.
        status = _stop_the_rest(pid, pid1)
    code = os.waitstatus_to_exitcode(status)  # -N when killed by signal N
    return Outcome(code if code >= 0 else 128 - code, started_ns, finished_ns, timed_out, signalled)


def _spawn(program: bytes, argv: Sequence[bytes], env: Mapping[bytes, bytes], pid1: bool) -> int:
    if pid1:
        return os.posix_spawn(program, list(argv), dict(env), setsigmask=(), setsigdef=_DEFAULTED)
    # Not PID 1: its own process group, so that it can be stopped with the rest.
    return os.posix_spawn(
        program, list(argv), dict(env), setsigmask=(), setsigdef=_DEFAULTED, setpgroup=0
    )


def _supervise(pid: int, timeout: float | None, grace: float) -> tuple[bool, int]:
    """Until ``pid`` has exited (not reaped: its PID stays ours, and so does its process
    group's ID); whether it timed out, and the first signal forwarded to it (0: none)."""
    start = time.monotonic()
    term_at = None if timeout is None else start + timeout
    kill_at: float | None = None
    timed_out = False
    signalled = 0
    while not _exited(pid):
        now = time.monotonic()
        if term_at is not None and now >= term_at:
            timed_out = True
            term_at = None
            kill_at = now + grace
            _signal(pid, signal.SIGTERM)
        elif kill_at is not None and now >= kill_at:
            kill_at = None
            _signal(pid, signal.SIGKILL)
        deadlines = [t for t in (term_at, kill_at) if t is not None]
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        info = signal.sigtimedwait(_WAITED, wait) if wait is not None else _sigwait()
        if info is not None and info.si_signo in FORWARDED:
            signalled = signalled or info.si_signo
            _signal(pid, info.si_signo)
    return timed_out, signalled


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, reaping every other child that has (orphans re-parented
    to us as PID 1) but not ``pid`` itself."""
    while True:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return False
        if info.si_pid == pid:
            return True
        os.waitpid(info.si_pid, 0)  # an orphan, already exited


def _stop_the_rest(pid: int, pid1: bool) -> int:
    """Kill what is left of the step and wait until it is gone; ``pid``'s wait status.

    As PID 1 (the container's, as in every pod: taskflow never shares the process
    namespace) that is every other process in the namespace: ``kill(-1)`` reaches them all
    and, since nobody can fork once SIGKILL is pending, every one of them ends as our
    child (re-parented) or outside our namespace's descendants (``kubectl exec``):
    reaping until ECHILD means our children all died. Otherwise only the child's process
    group can be reached (without /proc): it is killed while the child's zombie still
    holds its ID, then polled until empty (bounded)."""
    if pid1:
        _kill(-1)
        status = 0
        while True:
            try:
                reaped, st = os.waitpid(-1, 0)
            except ChildProcessError:
                return status
            if reaped == pid:
                status = st
    _kill(-pid)
    _signal(pid, signal.SIGKILL)  # when it is not its group's leader any more
    status = os.waitpid(pid, 0)[1]
    end = time.monotonic() + GROUP_GONE_WITHIN
    while _kill(-pid, 0) and time.monotonic() < end:
        time.sleep(0.002)
    return status


def _kill(target: int, sig: int = signal.SIGKILL) -> bool:
    """``kill(target, sig)``; False when nothing was there (ESRCH)."""
    try:
        os.kill(target, sig)
    except ProcessLookupError:
        return False
    return True


def _sigwait() -> signal.struct_siginfo:
    return signal.sigwaitinfo(_WAITED)


def _signal(pid: int, sig: int) -> None:
    try:  # noqa: SIM105 (contextlib is a slow import)
        os.kill(pid, sig)
    except ProcessLookupError:  # it exited in between: its SIGCHLD is on the way
        pass
