"""Results: another step's, substituted into this one (``read_reference``), and this
step's own, collected into its state (``collect``). Both read through ``_read``: no link,
no FIFO, never past the limit."""

from __future__ import annotations

import os

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
