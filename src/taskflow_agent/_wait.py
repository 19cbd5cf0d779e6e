"""Wait until the previous step is done, or until a forwarded signal comes.

Done means its state file exists *and* its agent has released the hand-off lock (``_lock``):
a state file alone may have been written early by the step itself.

The wait sleeps in the kernel either way. With ``_taskflow_native`` (the C module built into
the static executable, ``build/native.c``) it watches the directory with inotify and sleeps
in ``poll`` with the forwarded signals unblocked only around it (``native.wait``): a new
file, the lock's release (``IN_CLOSE_NOWRITE``, see ``_lock.release``) or a signal wakes it.
Without it (``python -m taskflow_agent``), or when the kernel refuses (no inotify instances
left: ``fs.inotify.max_user_instances``, EMFILE), it polls with ``sigtimedwait``. While the
state is there but the lock is held, inotify waits poll too, so that an agent killed from
outside (its lock dropped with no event after it) is seen within one poll interval.
"""

from __future__ import annotations

import os

from taskflow_agent import _lock, _signals

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

try:
    import _taskflow_native as _native  # type: ignore[import-not-found]
except ImportError:  # not the static executable
    _native = None

MODES = ("auto", "inotify", "poll")


def inotify_available() -> bool:
    return _native is not None


def wait_for(directory: str, name: str, *, mode: str = "auto", poll_interval: float = 0.05) -> int:
    """0 once ``directory/name`` exists (as anything: the reader checks what it is) and
    ``directory``'s agent is done; the signal number if a forwarded signal came first.

    ``mode`` ``inotify`` fails (OSError) instead of falling back; ``poll`` never uses it."""
    path = os.path.join(directory, name)
    peer = _lock.Peer(directory)
    # The descriptor stays open (close-on-exec, so the child never sees it): closing an
    # inotify instance waits for an SRCU grace period (milliseconds, docs/agent.md), which
    # would sit right in the hand-off. The kernel frees it when we exit.
    ino = None if mode == "poll" else _inotify_watch(directory, strict=mode == "inotify")
    try:
        # Checked after the watch is in place: a change in between is seen by this check
        # or wakes us, never lost between the two.
        while not (seen := _exists(path)) or not peer.free():
            if ino is None:
                signum = _poll(poll_interval)
            else:
                signum = _sleep(ino, poll_interval if seen else None)
            if signum:
                return signum
        return 0
    finally:
        peer.close()


def _poll(interval: float) -> int:
    info = signal.sigtimedwait(_signals.FORWARDED, interval)
    return 0 if info is None else info.si_signo


def _sleep(ino: int, timeout: float | None) -> int:
    """Until something may have changed in the watched directory (or ``timeout`` seconds);
    a forwarded signal's number if one came, else 0."""
    ms = -1 if timeout is None else max(1, round(timeout * 1000))
    signum: int = _native.wait(ino, ms, _signals.FORWARDED)
    try:
        while os.read(ino, 4096):  # the events themselves say nothing we need: look again
            pass
    except BlockingIOError:
        pass
    return signum


def _exists(path: str) -> bool:
    try:
        os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _inotify_watch(directory: str, *, strict: bool) -> int | None:
    if _native is None:
        if strict:
            raise OSError("inotify is only built into the static taskflow-agent")
        return None
    try:
        fd: int = _native.inotify_init1(_native.IN_CLOEXEC | _native.IN_NONBLOCK)
    except OSError as e:
        if strict:
            raise OSError(f"inotify_init1: {e.strerror} ({_why(e.errno)})") from None
        return None
    events = _native.IN_CLOSE_WRITE | _native.IN_MOVED_TO | _native.IN_CLOSE_NOWRITE
    try:
        _native.inotify_add_watch(fd, directory, events)
    except OSError:
        os.close(fd)
        if strict:
            raise
        return None
    return fd


def _why(errno_: int | None) -> str:
    import errno

    if errno_ == errno.EMFILE:
        return "this user's inotify instances are used up: fs.inotify.max_user_instances"
    if errno_ == errno.ENFILE:
        return "the system's open files are used up"
    return f"errno {errno_}"
