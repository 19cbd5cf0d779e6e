"""The agent's signals: all blocked from the start of ``step``, only ever *taken*.

The signals it cares about are blocked before anything else and taken with
``sigtimedwait``/``sigwaitinfo`` where it is ready for them (the hand-over, the
supervision), or unblocked only around the inotify wait's ``poll``, whose C handler only
writes the number to a pipe that the poll watches too (``build/native.c``). A signal is
never lost between two checks and never lands "at a bad moment": it is pending until the
code that handles it asks. The child gets an empty mask and default dispositions
(``_supervise``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    import signal
else:
    # The C module under signal.py, which imports enum (a slow import) for its IntEnums.
    import _signal as signal

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
NAMES: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
NAMES.update({signal.SIGHUP: "SIGHUP", signal.SIGQUIT: "SIGQUIT"})
BLOCKED = (*FORWARDED, signal.SIGCHLD)


def block() -> None:
    """Hold our signals (pending, for the code that takes them). Called first in ``step``:
    as PID 1 an unblocked signal with the default action is dropped by the kernel."""
    signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)


def name(signum: int) -> str:
    return NAMES.get(signum, str(signum))


def take_forwarded() -> int:
    """A forwarded signal that is pending (taken), else 0; does not wait."""
    info = signal.sigtimedwait(FORWARDED, 0)
    return 0 if info is None else info.si_signo


def wait(seconds: float) -> int:
    """Sleep ``seconds`` unless a forwarded signal comes first: that signal (taken), else 0."""
    info = signal.sigtimedwait(FORWARDED, seconds)
    return 0 if info is None else info.si_signo
