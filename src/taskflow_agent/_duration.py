"""Go-style durations (``30s``, ``1m30s``, ``1.5h``, ``250ms``), as Kubernetes and Tekton
write them. Pure."""

from __future__ import annotations

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError with the text when it is not a Go duration >= 0."""
    s = text.strip()
    if s == "0":
        return 0.0
    if not s or s.startswith(("-", "+")):
        raise ValueError(f"invalid duration {text!r} (want e.g. 30s, 1m30s, 250ms)")
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        number, unit = s[i:j], s[j:k]
        if not number or number == "." or number.count(".") > 1 or unit not in _UNITS:
            raise ValueError(f"invalid duration {text!r} (want e.g. 30s, 1m30s, 250ms)")
        total += float(number) * _UNITS[unit]
        i = k
    return total
