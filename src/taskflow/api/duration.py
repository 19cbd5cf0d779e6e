"""Go-style durations (``30s``, ``1m30s``, ``1.5h``), as Kubernetes users write them: Go's
``time.ParseDuration`` without a sign. The cases both this parser and the agent's are held to
are tests/data/durations.json."""

from __future__ import annotations

import re
from typing import Final

#: µ twice: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go accepts both.
_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

#: What the CRD accepts: a Go duration without sign (``0`` the one number without a unit; a
#: number has digits on at least one side of its point). ``[.]`` rather than ``\.``: a CEL
#: string literal refuses that escape. CEL's RE2 and Python's re read the pattern alike.
DURATION_PATTERN: Final = r"^(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"
DURATION_HINT: Final = "a duration such as 30s, 10m or 1h30m"

_PART = re.compile(r"([0-9]+(?:[.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError unless it matches :data:`DURATION_PATTERN`."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not {DURATION_HINT}")
    return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
