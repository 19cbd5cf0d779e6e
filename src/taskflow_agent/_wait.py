"""Wait until a file exists, or until a forwarded signal comes: inotify, else polling.

inotify comes from ``_taskflow_native``, the C module built into the static executable
(``build/native.c``); the stdlib has none. Without it (``python -m taskflow_agent``), or when
the kernel refuses (no inotify instances left: ``fs.inotify.max_user_instances``, EMFILE;
the directory absent), the wait polls. Either way the process sleeps in the kernel: no CPU
while idle besides the poll ticks.

Signals are blocked (``_signals``), so the wait *takes* them: polling is ``sigtimedwait``
with the poll interval as its timeout; with inotify a thread blocks in ``read`` on the
inotify descriptor and wakes the main thread (``_signals.WAKE``), which sleeps in
``sigwaitinfo`` for that or a forwarded signal. No handler raises into a blocking call.
"""

from __future__ import annotations

import os

from taskflow_agent import _signals

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


def wait_for(path: str, *, mode: str = "auto", poll_interval: float = 0.05) -> int:
    """0 once ``path`` exists (as a link or anything else: the reader checks what it is);
    the signal number if a forwarded signal came first.

    ``mode`` ``inotify`` fails (OSError) instead of falling back; ``poll`` never uses it.
    """
    if mode != "poll":
        fd = _inotify_watch(os.path.dirname(path) or ".", strict=mode == "inotify")
        if fd is not None:
            # The fd stays open (close-on-exec, so the child never sees it): closing an
            # inotify instance waits for an SRCU grace period, measured at 5-25 ms here,
            # which would sit right in the hand-off. The kernel frees it when we exit.
            reader = _Reader(fd)
            # Checked after the watch is in place: a file created in between is seen by
            # this check or wakes us, never lost between the two.
            while not _exists(path):
                if reader.failed:
                    break  # the reader stopped: poll the rest of the wait
                info = signal.sigwaitinfo((*_signals.FORWARDED, _signals.WAKE))
                if info.si_signo != _signals.WAKE:
                    return info.si_signo
            else:
                return 0
    while not _exists(path):
        got = signal.sigtimedwait(_signals.FORWARDED, poll_interval)
        if got is not None:
            return got.si_signo
    return 0


def _exists(path: str) -> bool:
    try:
        os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


class _Reader:
    """A thread that reads the inotify descriptor and wakes the main thread per event."""

    def __init__(self, fd: int) -> None:
        import _thread

        self.failed = False
        self._fd = fd
        self._main = _thread.get_ident()
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            while True:
                os.read(self._fd, 4096)  # blocks; any event in the directory = look again
                signal.pthread_kill(self._main, _signals.WAKE)
        except BaseException:  # a thread's exception would only be printed
            self.failed = True
            signal.pthread_kill(self._main, _signals.WAKE)


def _inotify_watch(directory: str, *, strict: bool) -> int | None:
    if _native is None:
        if strict:
            raise OSError("inotify is only built into the static taskflow-agent")
        return None
    try:
        fd: int = _native.inotify_init1(_native.IN_CLOEXEC)
    except OSError as e:
        if strict:
            raise OSError(f"inotify_init1: {e.strerror} ({_why(e.errno)})") from None
        return None
    try:
        _native.inotify_add_watch(fd, directory, _native.IN_CLOSE_WRITE | _native.IN_MOVED_TO)
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
