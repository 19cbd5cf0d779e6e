"""``$(steps.STEP.results.NAME)`` references in argv, env values and script text. Pure.

Everything is bytes: argv, the environment and scripts reach the child exactly as given,
whatever their encoding. Text that only looks similar (``$(date)``, ``$(results.x.path)``,
which the operator substitutes itself) is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# Step names are DNS labels, result names alphanumerics, '-' and '_' (as the CRD allows).
_REF = re.compile(rb"\$\(steps\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.results\.([A-Za-z0-9_-]+)\)")

Ref = tuple[str, str]  # (step, result)


def references(chunks: Iterable[bytes]) -> list[Ref]:
    """Every distinct reference in ``chunks``, in order of first appearance."""
    seen: dict[Ref, None] = {}
    for chunk in chunks:
        for m in _REF.finditer(chunk):
            seen.setdefault((m.group(1).decode(), m.group(3).decode()), None)
    return list(seen)


def substitute(chunk: bytes, value: Callable[[str, str], bytes]) -> bytes:
    """``chunk`` with each reference replaced by ``value(step, result)`` (in one pass: a
    value that itself contains ``$(steps...)`` is not expanded again)."""
    return _REF.sub(lambda m: value(m.group(1).decode(), m.group(3).decode()), chunk)
