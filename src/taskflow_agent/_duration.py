"""Go-style durations (``30s``, ``1m30s``, ``1.5h``, ``250ms``), as Kubernetes and Tekton
write them: Go's ``time.ParseDuration`` without a sign, the grammar of
tests/data/durations.json. Pure; a scanner rather than ``re``, which the agent's start-up
would pay to import."""

from __future__ import annotations

#: µ twice: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go accepts both.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
#: ASCII only: ``str.isdigit`` (and ``float``) would take any script's digits.
_NUMBER = frozenset("0123456789.")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError with the text when it is not a Go duration >= 0."""
    if text == "0":
        return 0.0
    if not text:
        raise _invalid(text)
    total = 0.0
    i, end = 0, len(text)
    while i < end:
        j = i
        while j < end and text[j] in _NUMBER:
            j += 1
        k = j
        while k < end and text[k] not in _NUMBER:
            k += 1
        number, unit = text[i:j], text[j:k]
        if number in ("", ".") or number.count(".") > 1 or unit not in _UNITS:
            raise _invalid(text)
        total += float(number) * _UNITS[unit]
        i = k
    return total


def _invalid(text: str) -> ValueError:
    return ValueError(f"invalid duration {text!r} (want e.g. 30s, 1m30s, 250ms)")
