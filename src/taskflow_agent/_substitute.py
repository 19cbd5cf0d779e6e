"""``$(steps.STEP.results.NAME)`` references in argv, env values and script text. Pure.

Everything is bytes: argv, the environment and scripts reach the child exactly as given,
whatever their encoding. Text that only looks similar (``$(date)``, ``$(results.x.path)``,
which the operator substitutes itself, a name the CRD would not allow) is left alone.
A scanner rather than ``re``: ``re`` (with ``enum``) is a slow import for a program that
starts in every step container.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

Ref = tuple[str, str]  # (step, result)

_OPEN = b"$(steps."
_MIDDLE = b".results."
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_RESULT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def is_step_name(name: bytes) -> bool:
    """A DNS label (RFC 1123), as step (container) names are."""
    return (
        0 < len(name) <= 63
        and name[0] in _LOWER
        and name[-1] in _LOWER
        and all(c in _LOWER or c == 0x2D for c in name)
    )


def is_result_name(name: bytes) -> bool:
    """Letters, digits, '-' and '_' (as the CRD allows for result names)."""
    return bool(name) and all(c in _RESULT for c in name)


def _scan(chunk: bytes) -> Iterator[tuple[int, int, Ref]]:
    """(start, end, ref) of each reference in ``chunk``, left to right."""
    i = chunk.find(_OPEN)
    while i >= 0:
        name_at = i + len(_OPEN)
        mid = chunk.find(_MIDDLE, name_at)
        close = chunk.find(b")", name_at)
        if 0 <= mid < close:
            step, result = chunk[name_at:mid], chunk[mid + len(_MIDDLE) : close]
            if is_step_name(step) and is_result_name(result):
                yield i, close + 1, (step.decode(), result.decode())
                i = chunk.find(_OPEN, close + 1)
                continue
        i = chunk.find(_OPEN, i + 1)


def references(chunks: Iterable[bytes]) -> list[Ref]:
    """Every distinct reference in ``chunks``, in order of first appearance."""
    seen: dict[Ref, None] = {}
    for chunk in chunks:
        for _, _, ref in _scan(chunk):
            seen.setdefault(ref, None)
    return list(seen)


def substitute(chunk: bytes, value: Callable[[str, str], bytes]) -> bytes:
    """``chunk`` with each reference replaced by ``value(step, result)`` (in one pass: a
    value that itself contains ``$(steps...)`` is not expanded again)."""
    out = []
    done = 0
    for start, end, ref in _scan(chunk):
        out += [chunk[done:start], value(*ref)]
        done = end
    if not out:
        return chunk
    out.append(chunk[done:])
    return b"".join(out)
