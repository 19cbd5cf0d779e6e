"""Run the step's command as our child and supervise it as PID 1 of the container would.

- PATH lookup as execvp does, with the child's PATH (``lookpath``), then ``posix_spawn``
  with the exact argv and environment, our stdin/stdout/stderr, default signal dispositions
  and an empty signal mask (Python ignores SIGPIPE/SIGXFSZ; the child must not inherit it).
- SIGTERM/SIGINT/SIGHUP/SIGQUIT are forwarded to the child. They and SIGCHLD are blocked and
  taken with ``sigtimedwait``, so a signal cannot be lost between two checks and nothing
  runs in a handler.
- Every child that exits is reaped (orphans of the step's processes are re-parented to us as
  PID 1); the step's command's status is kept.
- A timeout sends SIGTERM, then SIGKILL after the grace period.
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Mapping, Sequence
else:
    # The C module under signal.py, which imports enum (a slow import) for its IntEnums.
    import _signal as signal

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
NAMES: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
NAMES.update({signal.SIGHUP: "SIGHUP", signal.SIGQUIT: "SIGQUIT"})
_WAITED = (*FORWARDED, signal.SIGCHLD)
# Reset to SIG_DFL in the child: what we (or Python) may have changed.
_DEFAULTED = (*_WAITED, signal.SIGPIPE, signal.SIGXFSZ)
# glibc's execvp uses this when PATH is unset (confstr(_CS_PATH)).
DEFAULT_PATH = b"/bin:/usr/bin"


class SpawnError(Exception):
    """The command could not be started; ``exit_code`` is what a shell would report
    (127 not found, 126 found but not executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Outcome:
    __slots__ = ("exit_code", "finished_ns", "started_ns", "timed_out")

    def __init__(self, exit_code: int, started_ns: int, finished_ns: int, timed_out: bool):
        self.exit_code = exit_code
        self.started_ns = started_ns
        self.finished_ns = finished_ns
        self.timed_out = timed_out


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


def block_signals() -> None:
    """Hold our signals for ``run``'s sigtimedwait (call before anything can arrive that
    should be forwarded, i.e. before the child exists)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)


def run(
    argv: Sequence[bytes],
    env: Mapping[bytes, bytes],
    *,
    timeout: float | None,
    grace: float,
    forward_at_start: Sequence[int] = (),
) -> Outcome:
    """Spawn ``argv`` (argv[0] looked up in ``env``'s PATH) and supervise it until it exits.
    ``block_signals()`` must have been called; ``forward_at_start`` are signals that came
    before and are sent to the child as soon as it exists. Raises SpawnError."""
    program = lookpath(argv[0], env.get(b"PATH"))
    started_ns = time.time_ns()
    try:
        pid = os.posix_spawn(program, list(argv), dict(env), setsigmask=(), setsigdef=_DEFAULTED)
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise SpawnError(f"cannot run {os.fsdecode(program)}: {e.strerror}", code) from None
    for sig in forward_at_start:
        _signal(pid, sig)
    start = time.monotonic()
    term_at = None if timeout is None else start + timeout
    kill_at: float | None = None
    timed_out = False
    while True:
        status = _reap(pid)
        if status is not None:
            finished_ns = time.time_ns()
            _reap_orphans()
            code = os.waitstatus_to_exitcode(status)  # -N when killed by signal N
            return Outcome(code if code >= 0 else 128 - code, started_ns, finished_ns, timed_out)
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
            _signal(pid, info.si_signo)


def _sigwait() -> signal.struct_siginfo:
    return signal.sigwaitinfo(_WAITED)


def _signal(pid: int, sig: int) -> None:
    try:  # noqa: SIM105 (contextlib is a slow import)
        os.kill(pid, sig)
    except ProcessLookupError:  # it exited in between: its SIGCHLD is on the way
        pass


def _reap(pid: int) -> int | None:
    """Reap every exited child; the wait status of ``pid`` if it was one of them."""
    found = None
    while True:
        try:
            reaped, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if reaped == 0:
            return found
        if reaped == pid:
            found = status


def _reap_orphans() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


if TYPE_CHECKING:
    Handlers = dict[int, signal._HANDLER]


def set_handlers(handler: Callable[[int, object], None]) -> Handlers:
    """Install ``handler`` for the forwarded signals; the previous handlers."""
    return {sig: signal.signal(sig, handler) for sig in FORWARDED}


def restore_handlers(previous: Handlers) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
