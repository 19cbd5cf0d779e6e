"""Wait until a file exists: inotify on its directory, else polling.

inotify comes from ``_taskflow_native``, the C module built into the static executable
(``build/native.c``); the stdlib has none. Without it (``python -m taskflow_agent``), or when
the kernel refuses (no inotify instances left, the directory absent), the wait polls. Either
way the process sleeps in the kernel while waiting: no CPU while idle besides the poll
ticks.
"""

from __future__ import annotations

import os
import time

try:
    import _taskflow_native as _native  # type: ignore[import-not-found]
except ImportError:  # not the static executable
    _native = None

MODES = ("auto", "inotify", "poll")


def inotify_available() -> bool:
    return _native is not None


def wait_for(path: str, *, mode: str = "auto", poll_interval: float = 0.05) -> str:
    """Return once ``path`` exists, and how it was waited for (``inotify`` or ``poll``).

    ``mode`` ``inotify`` fails (OSError) instead of falling back; ``poll`` never uses it.
    A signal handler that raises interrupts either wait.
    """
    if mode != "poll":
        fd = _inotify_watch(os.path.dirname(path) or ".", strict=mode == "inotify")
        if fd is not None:
            # Checked after the watch is in place: a file created in between is seen by
            # this check or by the watch, never lost between the two.
            while not os.path.exists(path):
                os.read(fd, 4096)  # blocks; any event in the directory = look again
            # The fd stays open (close-on-exec, so the child never sees it): closing an
            # inotify instance waits for an SRCU grace period, measured at 5-25 ms here,
            # which would sit right in the hand-off. The kernel frees it when we exit.
            return "inotify"
    while not os.path.exists(path):
        time.sleep(poll_interval)
    return "poll"


def _inotify_watch(directory: str, *, strict: bool) -> int | None:
    if _native is None:
        if strict:
            raise OSError("inotify is only built into the static taskflow-agent")
        return None
    try:
        fd: int = _native.inotify_init1(_native.IN_CLOEXEC)
    except OSError:
        if strict:
            raise
        return None
    try:
        _native.inotify_add_watch(fd, directory, _native.IN_CLOSE_WRITE | _native.IN_MOVED_TO)
    except OSError:
        os.close(fd)
        if strict:
            raise
        return None
    return fd
