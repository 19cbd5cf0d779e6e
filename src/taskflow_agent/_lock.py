"""The hand-off lock: a step is done when its *agent* says so, not when a state file exists.

A step can write its own run directory, so ``state.json`` there proves nothing by itself: a
step could write one early and start the next step while it still runs. So the agent holds
an exclusive ``flock`` on its run directory (the volume's mount point: the step can neither
replace it nor unlock it, the lock belongs to the agent's own open file, close-on-exec) from
before its command starts until every process of the step is gone and the real state has
replaced whatever was there. The next agent reads the state only once the lock is free
(``Peer.free``). A lock that is never taken (no agent there yet) never blocks: the state
file must also exist, and only the agent's step could have written it.

An agent killed from outside (SIGKILL, the OOM killer) drops its lock with its life; a state
its step forged before that is then read as the agent's. The operator still sees the
container's real exit code, which disagrees (``StepStateMismatch``) or says what killed it
(``AgentDied``), fails the Task and stops the pod. docs/agent.md's threat model says so.
"""

from __future__ import annotations

import fcntl  # a builtin module of the static agent (build/main.c)
import os

from taskflow_agent._read import _DIR, StepError


def hold(directory: str) -> int:
    """Take ``directory``'s lock for this agent; the descriptor that holds it."""
    fd = os.open(directory, _DIR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StepError(f"{directory} is locked by another process: not this step's own") from None
    return fd


def release(fd: int, directory: str) -> None:
    """Let the next agent read our state (it is in place and nothing of the step runs).

    Then open and close the directory once: the ``IN_CLOSE_NOWRITE`` that makes wakes an
    inotify waiter that saw the state while the lock was still held (the state's rename
    comes first, so that no waiter ever finds the lock free and a forged state in place)."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    os.close(os.open(directory, _DIR))


class Peer:
    """The previous step's run directory, as the waiting agent sees its lock."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._fd: int | None = None

    def free(self) -> bool:
        """Whether its agent has released (or never taken) the lock. One descriptor for the
        whole wait: opening and closing one per check would wake our own inotify wait."""
        if self._fd is None:
            self._fd = os.open(self.directory, _DIR)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
