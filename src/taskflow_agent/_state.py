"""A step's state: the JSON in ``<run>/<step>/state.json`` and in the termination message.

Encoding, decoding and the 4096-byte rule are pure; ``write_atomic`` is the one write.
Schema (v1, compact, keys in this order)::

    {"v":1,"name":str,"exitCode":int,"startedAt":str|null,"finishedAt":str|null,
     "skipped":bool,"timedOut":bool,"abort":bool,"error":str|null,
     "results":[{"name":str,"value":str}],"attempts":int,"retriedExitCodes":[int]}

``startedAt``/``finishedAt`` are null only for a skipped step (its command never ran;
``exitCode`` is then 0). ``attempts`` and ``retriedExitCodes`` are only there for a step
that was retried (``--retries``): how many times its command ran, and the exit codes of
every run but the last (``exitCode``, ``timedOut`` and ``results`` are the last one's).
Left out otherwise, to keep the termination message small (and readable by an operator
that predates them: its decoder ignores keys it does not know).
"""

from __future__ import annotations

import os
import time

from taskflow_agent import _codec

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")

VERSION = 1
# The kubelet keeps at most 4096 bytes of a container's termination message (less when
# the pod has many containers: ``--message-limit``).
TERMINATION_LIMIT = 4096
# An error text longer than this is cut (with a note): it must leave room for the rest.
ERROR_LIMIT = 1024


class State:
    """One step's outcome (a plain record; ``failed``/``encode`` derive from it)."""

    __slots__ = (
        "abort",
        "attempts",
        "error",
        "exit_code",
        "finished_at",
        "name",
        "results",
        "retried_exit_codes",
        "skipped",
        "started_at",
        "timed_out",
    )

    def __init__(
        self,
        name: str,
        *,
        exit_code: int = 0,
        started_at: str | None = None,
        finished_at: str | None = None,
        skipped: bool = False,
        timed_out: bool = False,
        abort: bool = False,
        error: str | None = None,
        results: list[tuple[str, str]] | None = None,
        attempts: int = 1,
        retried_exit_codes: list[int] | None = None,
    ) -> None:
        self.name = name
        self.exit_code = exit_code
        self.started_at = started_at
        self.finished_at = finished_at
        self.skipped = skipped
        self.timed_out = timed_out
        self.abort = abort
        self.error = error
        self.results = results or []
        self.attempts = attempts
        self.retried_exit_codes = retried_exit_codes or []

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.timed_out or self.error is not None

    def as_dict(self) -> dict[str, _codec.Value]:
        d: dict[str, _codec.Value] = {
            "v": VERSION,
            "name": self.name,
            "exitCode": self.exit_code,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "skipped": self.skipped,
            "timedOut": self.timed_out,
            "abort": self.abort,
            "error": self.error,
            "results": [{"name": n, "value": v} for n, v in self.results],
        }
        if self.attempts > 1:
            d["attempts"] = self.attempts
        if self.retried_exit_codes:
            d["retriedExitCodes"] = list(self.retried_exit_codes)
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"State({self.as_dict()!r})"


def encode(state: State) -> bytes:
    """Compact UTF-8 JSON (what the kubelet counts against its limit)."""
    return _codec.dumps(state.as_dict())


def decode(data: bytes) -> State:
    """A state written by ``encode``; ValueError with the reason otherwise."""
    try:
        d = _codec.loads(data)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(d, dict) or d.get("v") != VERSION:
        raise ValueError(f"not a v{VERSION} step state")
    try:
        return State(
            str(d["name"]),
            exit_code=_typed(d["exitCode"], int),
            started_at=_optional_str(d["startedAt"]),
            finished_at=_optional_str(d["finishedAt"]),
            skipped=_typed(d["skipped"], bool),
            timed_out=_typed(d["timedOut"], bool),
            abort=_typed(d["abort"], bool),
            error=_optional_str(d["error"]),
            results=[_result(r) for r in _typed(d["results"], list)],
            attempts=_typed(d.get("attempts", 1), int),
            retried_exit_codes=[
                _typed(c, int) for c in _typed(d.get("retriedExitCodes", []), list)
            ],
        )
    except KeyError as e:
        raise ValueError(f"malformed step state: no {e}") from None


def _typed(value: object, kind: type[_T]) -> _T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"malformed step state: {value!r} is not {kind.__name__}")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else _typed(value, str)


def _result(value: object) -> tuple[str, str]:
    r = _typed(value, dict)
    try:
        return _typed(r["name"], str), _typed(r["value"], str)
    except KeyError as e:
        raise ValueError(f"malformed step state: a result without {e}") from None


def clip_error(text: str) -> str:
    if len(text) <= ERROR_LIMIT:
        return text
    return text[: ERROR_LIMIT - 40] + f"... ({len(text)} characters, cut)"


def fit(state: State, *, limit: int = TERMINATION_LIMIT) -> State:
    """``state`` if it encodes within ``limit`` bytes; else the same step failed with no
    results and an error that gives the sizes (a value is never truncated). When even that
    is too large (a small budget), the earlier attempts' exit codes go, then the error text
    is cut to what fits, then the count of attempts goes; a state that cannot fit at all
    (the name and the fixed fields alone are over ``limit``) is returned as small as it gets
    (``minimal_size``)."""
    size = len(encode(state))
    if size <= limit:
        return state
    if state.results:
        results_size = len(_codec.dumps([{"name": n, "value": v} for n, v in state.results]))
        state = State(
            state.name,
            exit_code=state.exit_code or 1,
            started_at=state.started_at,
            finished_at=state.finished_at,
            skipped=state.skipped,
            timed_out=state.timed_out,
            abort=state.abort,
            error=(
                f"results are {results_size} bytes (the state {size}); a step's results must "
                f"fit in {limit} bytes with the status fields"
            ),
            results=[],
            attempts=state.attempts,
            retried_exit_codes=state.retried_exit_codes,
        )
    # What is only detail goes before the error text, which says why the step failed.
    if len(encode(state)) > limit:
        state.retried_exit_codes = []
    if state.error is not None and len(encode(state)) > limit:
        state.error = _cut(state, limit)
    if len(encode(state)) > limit:
        state.attempts = 1
    return state


def _cut(state: State, limit: int) -> str:
    """The longest prefix of ``state.error`` (marked as cut) with which it fits ``limit``;
    "" when none does (an empty error still says the step failed)."""
    text = state.error or ""
    state.error = ""
    room = limit - len(encode(state))
    lo, hi = 0, len(text)
    best = ""
    while lo <= hi:  # the encoded size grows with the prefix: bisect on it
        mid = (lo + hi) // 2
        candidate = text[:mid] + "... (cut)"
        if len(_codec.dumps(candidate)) - 2 <= room:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def minimal_size(name: str) -> int:
    """The most bytes a failed state of a step called ``name`` takes with no results and its
    error cut to "": a ``--message-limit`` below it cannot carry that step's outcome."""
    stamp = timestamp(0)
    return len(encode(State(name, exit_code=255, started_at=stamp, finished_at=stamp, error="")))


def timestamp(ns: int) -> str:
    """``ns`` since the epoch as UTC with milliseconds: ``2026-12-02T01:02:03.456Z``."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def write_atomic(path: str, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that a reader sees nothing or all of it (temp file in the
    same directory, then rename). No fsync: readers are containers of the same pod on the
    same node, which share the page cache; a node crash loses the pod anyway."""
    tmp = f"{path}.tmp.{os.getpid()}"
    # The step could have planted a link by that name (it can write our directory): a new
    # file, never one reached through a link.
    try:  # noqa: SIM105 (contextlib is a slow import)
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 (contextlib is a slow import)
            os.unlink(tmp)
        except OSError:
            pass
        raise
