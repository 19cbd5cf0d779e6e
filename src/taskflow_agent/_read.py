"""Reads of the run directory that a step cannot redirect.

Every earlier step could write its own run directory (it is read-write in its container)
and may have planted links or FIFOs there for a later agent to trip on. So a read walks the
path from the run directory one component at a time (``O_NOFOLLOW|O_DIRECTORY`` with
``dir_fd``), opens the file ``O_NOFOLLOW|O_NONBLOCK`` and checks with ``fstat`` that it is
a regular file, and never reads past a limit. Anything else fails with what was found
where (``/taskflow/run/a/results is a symbolic link, not a directory``).
"""

from __future__ import annotations

import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
)


class StepError(Exception):
    """The step failed before or after its command: the message goes into ``error``."""


class Unsafe(StepError):
    """Something other than a directory or a regular file where one belongs."""


class TooLarge(StepError):
    """A file larger than the limit (a result that cannot fit in the message)."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__(f"{path} is {size} bytes")
        self.size = size


def read(root: str, parts: tuple[str, ...], limit: int) -> bytes:
    """The bytes of ``root/parts...``, a regular file of at most ``limit`` bytes, reached
    without following any link below ``root``. FileNotFoundError when a component is
    missing; Unsafe or TooLarge otherwise."""
    fd = _open_file(root, parts)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unsafe(f"{_show(root, parts)} is {_kind(st.st_mode)}, not a regular file")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(_show(root, parts), max(st.st_size, len(data)))
    return data


def exists(root: str, parts: tuple[str, ...]) -> bool:
    """Whether ``root/parts...`` is a regular file (reached as ``read`` does); Unsafe when
    it is something else."""
    try:
        fd = _open_file(root, parts)
    except FileNotFoundError:
        return False
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        raise Unsafe(f"{_show(root, parts)} is {_kind(mode)}, not a regular file")
    return True


def _open_file(root: str, parts: tuple[str, ...]) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                below = os.open(part, _DIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Unsafe(_not_a(fd, part, _show(root, parts[: i + 1]))) from None
                raise
            os.close(fd)
            fd = below
        try:
            return os.open(parts[-1], _FILE, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise Unsafe(f"{_show(root, parts)} is a symbolic link, not a file") from None
            raise
    finally:
        os.close(fd)


def _not_a(dir_fd: int, part: str, shown: str) -> str:
    try:
        mode = os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return f"{shown} is not a directory"
    return f"{shown} is {_kind(mode)}, not a directory"


def _kind(mode: int) -> str:
    for test, text in _KINDS:
        if test(mode):
            return text
    return "a regular file" if stat.S_ISREG(mode) else f"of type {stat.S_IFMT(mode):o}"


def _show(root: str, parts: tuple[str, ...]) -> str:
    return os.path.join(root, *parts)
