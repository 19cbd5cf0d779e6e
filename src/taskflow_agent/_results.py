"""Results: another step's, substituted into this one (``read_reference``), and this
step's own, collected into its state (``collect``) and cleared before a retry (``clear``).
Reads go through ``_read``: no link, no FIFO, never past the limit."""

from __future__ import annotations

import errno
import os
import stat

from taskflow_agent import _read
from taskflow_agent._read import StepError

STATE = "state.json"


def read_reference(run_dir: str, step: str, result: str, *, limit: int) -> bytes:
    """The value of ``$(steps.STEP.results.RESULT)``; StepError saying why not."""
    ref = f"$(steps.{step}.results.{result})"
    try:
        ran = _read.exists(run_dir, (step, STATE))
    except (StepError, OSError) as e:
        raise StepError(f"{ref}: {e}") from None
    if not ran:
        raise StepError(f"{ref}: step {step!r} has not run before this step")
    try:
        return _read.read(run_dir, (step, "results", result), limit)
    except FileNotFoundError:
        path = os.path.join(run_dir, step, "results", result)
        raise StepError(
            f"{ref}: step {step!r} did not write result {result!r} ({path} is missing)"
        ) from None
    except _read.TooLarge as e:
        raise StepError(f"{ref}: {e}; larger than any step's results ({limit} bytes)") from None
    except (StepError, OSError) as e:
        raise StepError(f"{ref}: {e}") from None


def collect(
    run_dir: str, name: str, results: list[str], limit: int
) -> tuple[list[tuple[str, str]], str | None, bool]:
    """The declared results the step wrote, what is wrong with the others, and whether one
    is too large for the termination message."""
    found = []
    missing = []
    problems = []
    too_large = False
    for result in results:
        try:
            data = _read.read(run_dir, (name, "results", result), limit)
        except FileNotFoundError:
            missing.append(result)
            continue
        except _read.TooLarge as e:
            problems.append(
                f"result {result!r}: {e}; a step's results must fit in {limit} bytes with "
                "the status fields"
            )
            too_large = True
            continue
        except (StepError, OSError) as e:
            problems.append(f"result {result!r}: {e}")
            continue
        try:
            found.append((result, data.decode()))
        except UnicodeDecodeError:
            problems.append(f"result {result!r} is not UTF-8 text")
    if missing:
        where = os.path.join(run_dir, name, "results", "NAME")
        problems.append(
            f"result(s) {', '.join(missing)} not written (the step writes "
            f"$(results.NAME.path) = {where})"
        )
    return found, "; ".join(problems) or None, too_large


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clear(run_dir: str, name: str) -> None:
    """Empty ``<run>/<name>/results`` (a retry starts without the last attempt's results).
    Every process of the step is gone by then, but what it left may be links: the walk
    goes by descriptor and never follows one; a ``results`` that is not a directory any
    more is removed and made again."""
    own = os.open(os.path.join(run_dir, name), _DIR)
    try:
        try:
            fd = os.open("results", _DIR, dir_fd=own)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            os.unlink("results", dir_fd=own)
        else:
            _empty(fd)
            return
        os.mkdir("results", dir_fd=own)
    finally:
        os.close(own)


def _empty(fd: int) -> None:
    """Remove everything in the directory open as ``fd`` (closed here)."""
    try:
        for entry in list(os.scandir(fd)):
            st = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _empty(os.open(entry.name, _DIR, dir_fd=fd))
                os.rmdir(entry.name, dir_fd=fd)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
