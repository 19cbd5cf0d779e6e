"""Text for people (pure): colour, step prefixes, tables, ages, durations and summaries."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from taskflow.api import task_status
from taskflow.ctl._model import CANCELLED, Attempt, StepView, TaskView, attempt_of
from taskflow.status import format_duration, parse_time

# -- colour ---------------------------------------------------------------------------------

RESET: Final = "\x1b[0m"
BOLD: Final = "1"
RED: Final = "31"
GREEN: Final = "32"
YELLOW: Final = "33"
#: step prefixes cycle through these (no red/green: they mean failure/success here)
STEP_COLOURS: Final = ("36", "35", "34", "33", "96", "95", "94", "93")


def use_colour(isatty: bool, env: Mapping[str, str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org: any
    non-empty value)."""
    return isatty and not env.get("NO_COLOR")


def paint(text: str, code: str, on: bool) -> str:
    return f"\x1b[{code}m{text}{RESET}" if on and text else text


def word_colour(word: str) -> str:
    if word == task_status.SUCCESSFUL:
        return GREEN
    if word in (task_status.FAILURE, CANCELLED):
        return RED
    return YELLOW


def step_prefix(name: str, index: int, colour: bool) -> str:
    """``[name] `` before each log line; the colour is the step's position's."""
    return paint(f"[{name}]", STEP_COLOURS[index % len(STEP_COLOURS)], colour) + " "


# -- log lines --------------------------------------------------------------------------------


class LineSplitter:
    """Bytes of a log stream -> whole lines (without the newline). UTF-8 split across chunks
    is reassembled; invalid bytes become U+FFFD; any line length is fine."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""

    def feed(self, chunk: bytes) -> list[str]:
        text = self._partial + self._decoder.decode(chunk)
        *lines, self._partial = text.split("\n")
        return lines

    def flush(self) -> list[str]:
        """The last line when the stream did not end with a newline."""
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return [rest] if rest else []


# -- times ----------------------------------------------------------------------------------


def age(since: str | None, now: datetime) -> str:
    """kubectl's short age: ``45s``, ``12m``, ``5h``, ``3d``, ``2y`` (``<unknown>`` if absent)."""
    if not since:
        return "<unknown>"
    try:
        seconds = int((now - parse_time(since)).total_seconds())
    except ValueError:
        return "<unknown>"
    seconds = max(0, seconds)
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    days = seconds // 86400
    return f"{days}d" if days < 730 else f"{days // 365}y"


def step_duration(step: StepView, now: datetime) -> str:
    """How long a step ran (still runs: until ``now``); "" before it started."""
    if not step.started_at:
        return ""
    try:
        start = parse_time(step.started_at)
        end = parse_time(step.finished_at) if step.finished_at else now
    except ValueError:
        return ""
    return format_duration((end - start).total_seconds())


def task_duration(task: TaskView, now: datetime) -> str:
    """The Task's duration when finished, the time so far while running, else ""."""
    st = task.status
    if st.duration:
        return st.duration
    if st.start_time and not task.final:
        try:
            return format_duration((now - parse_time(st.start_time)).total_seconds())
        except ValueError:
            return ""
    return ""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_timeout(text: str) -> float:
    """``90`` (seconds), ``90s``, ``5m``, ``1h30m``, ``1.5h`` -> seconds; ValueError else."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise ValueError(f"not a duration: {text!r} (e.g. 90s, 5m, 1h30m)") from None
    if value < 0:
        raise ValueError(f"not a duration: {text!r} (negative)")
    return value


# -- summaries and tables -------------------------------------------------------------------


def summary(task_name: str, att: Attempt, colour: bool) -> str:
    """The one line after the logs: ``task/NAME Failure (StepFailed: ...) after 1m5s``."""
    head = f"task/{task_name}"
    if att.number > 1:
        head += f" attempt {att.number}"
    text = f"{head} {paint(att.word, word_colour(att.word) + ';' + BOLD, colour)}"
    shown_reason = att.reason and att.reason not in (att.word, "Succeeded")
    if shown_reason and att.message:
        text += f" ({att.reason}: {att.message})"
    elif shown_reason:
        text += f" ({att.reason})"
    if att.duration:
        text += (
            f" in {att.duration}"
            if att.word == task_status.SUCCESSFUL
            else f" after {att.duration}"
        )
    return text


#: one glyph per step state in the STEPS column (unicode, and plain ASCII)
GLYPHS: Final = {
    "ok": ("✓", "+"),
    "failed": ("✗", "x"),
    "running": ("▸", ">"),
    "waiting": ("·", "."),
    "notrun": ("-", "-"),
}


def step_glyph(step: StepView, ascii_only: bool) -> str:
    if step.state == task_status.STEP_TERMINATED:
        key = "ok" if step.exit_code == 0 else "failed"
    elif step.state == task_status.STEP_RUNNING:
        key = "running"
    elif step.state == task_status.STEP_NOT_RUN:
        key = "notrun"
    else:
        key = "waiting"
    return GLYPHS[key][1 if ascii_only else 0]


def steps_column(task: TaskView, ascii_only: bool) -> str:
    att = attempt_of(task, task.current_attempt)
    if att is None:
        return ""
    return "".join(step_glyph(s, ascii_only) for s in att.steps)


def can_encode(text: str, encoding: str | None) -> bool:
    try:
        text.encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


GET_HEADERS: Final = ("NAME", "STATUS", "STEP", "STEPS", "DURATION", "AGE")


def get_row(task: TaskView, now: datetime, ascii_only: bool, namespace: bool) -> list[str]:
    """One line of ``get``: the STATUS and STEP columns are ``kubectl get tasks``'; STEPS has
    a glyph per step (✓ done, ✗ failed, ▸ running, · waiting, - not run)."""
    word = task.word
    if task.current_attempt > 1:
        word += f" (attempt {task.current_attempt})"
    row = [
        task.name,
        word,
        task.status.progress or "",
        steps_column(task, ascii_only),
        task_duration(task, now),
        age(task.metadata.creation_timestamp, now),
    ]
    return [task.metadata.namespace, *row] if namespace else row


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns as kubectl prints them: left aligned, three spaces apart."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        lines.append(indent + "   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def one_line(text: str | None, limit: int = 120) -> str:
    """A message on one line, cut at ``limit`` characters (tables stay readable)."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
