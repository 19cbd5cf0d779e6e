"""JSON for the state file, without the stdlib's ``json``.

``json`` imports ``re`` and ``enum``, which take longer to load than the rest of the agent
and the interpreter's start-up together; the agent starts in every step container, so it
writes and reads its one small document with this instead. Pure.

- ``dumps`` writes compact JSON exactly as ``json.dumps(v, separators=(",", ":"),
  ensure_ascii=False)`` does for str, int, bool, None, list and dict (tests compare),
  except that a lone surrogate (an undecodable byte of a path, via surrogateescape) is
  written as its ``\\uXXXX`` escape rather than failing.
- ``loads`` reads any JSON text made of objects, arrays, strings, integers, true, false
  and null (numbers with a fraction or exponent are refused: the state has none).
"""

from __future__ import annotations

_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
_ESCAPES.update({0x08: "\\b", 0x0C: "\\f"})
_UNESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WS = " \t\n\r"

TYPE_CHECKING = False  # typing itself is a slow import; mypy treats this name as True
if TYPE_CHECKING:
    from typing import TypeAlias

    Value: TypeAlias = bool | int | str | list["Value"] | dict[str, "Value"] | None


def dumps(value: Value) -> bytes:
    """Compact UTF-8 JSON of ``value``."""
    parts: list[str] = []
    _dump(value, parts)
    return "".join(parts).encode("utf-8", "backslashreplace")


def _dump(v: Value, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, str):
        out.append('"' + v.translate(_ESCAPES) + '"')
    elif isinstance(v, list):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _dump(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        for i, (key, item) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append('"' + key.translate(_ESCAPES) + '":')
            _dump(item, out)
        out.append("}")
    else:
        raise TypeError(f"cannot write {type(v).__name__} as JSON")


def loads(data: bytes) -> Value:
    """The value in ``data``; ValueError saying where it is not JSON."""
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 at byte {e.start}") from None
    value, end = _value(text, _skip(text, 0))
    if _skip(text, end) != len(text):
        raise ValueError(f"extra data at {end}")
    return value


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def _value(s: str, i: int) -> tuple[Value, int]:
    if i >= len(s):
        raise ValueError("unexpected end")
    c = s[i]
    if c == '"':
        return _string(s, i + 1)
    if c == "{":
        return _object(s, i + 1)
    if c == "[":
        return _array(s, i + 1)
    for word, v in (("true", True), ("false", False), ("null", None)):
        if s.startswith(word, i):
            return v, i + len(word)
    j = i + 1 if c == "-" else i
    k = j
    while k < len(s) and "0" <= s[k] <= "9":
        k += 1
    if k == j or (s[j] == "0" and k > j + 1) or (k < len(s) and s[k] in ".eE"):
        raise ValueError(f"unexpected {s[i : i + 10]!r} at {i}")
    return int(s[i:k]), k


def _string(s: str, i: int) -> tuple[str, int]:
    parts = []
    while True:
        j = i
        while j < len(s) and s[j] != '"' and s[j] != "\\":
            if s[j] < " ":
                raise ValueError(f"control character in a string at {j}")
            j += 1
        if j >= len(s):
            raise ValueError("unterminated string")
        parts.append(s[i:j])
        if s[j] == '"':
            return "".join(parts), j + 1
        esc = s[j + 1 : j + 2]
        if esc == "u":
            code = _hex4(s, j + 2)
            i = j + 6
            if 0xD800 <= code < 0xDC00 and s.startswith("\\u", i):
                low = _hex4(s, i + 2)
                if 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            parts.append(chr(code))
        elif esc in _UNESCAPES:
            parts.append(_UNESCAPES[esc])
            i = j + 2
        else:
            raise ValueError(f"bad escape at {j}")


def _hex4(s: str, i: int) -> int:
    digits = s[i : i + 4]
    if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"bad \\u escape at {i - 2}")
    return int(digits, 16)


def _object(s: str, i: int) -> tuple[dict[str, Value], int]:
    out: dict[str, Value] = {}
    i = _skip(s, i)
    if s.startswith("}", i):
        return out, i + 1
    while True:
        if not s.startswith('"', i):
            raise ValueError(f"expected a key at {i}")
        key, i = _string(s, i + 1)
        i = _skip(s, i)
        if not s.startswith(":", i):
            raise ValueError(f"expected ':' at {i}")
        out[key], i = _value(s, _skip(s, i + 1))
        i = _skip(s, i)
        if s.startswith("}", i):
            return out, i + 1
        if not s.startswith(",", i):
            raise ValueError(f"expected ',' or '}}' at {i}")
        i = _skip(s, i + 1)


def _array(s: str, i: int) -> tuple[list[Value], int]:
    out: list[Value] = []
    i = _skip(s, i)
    if s.startswith("]", i):
        return out, i + 1
    while True:
        item, i = _value(s, _skip(s, i))
        out.append(item)
        i = _skip(s, i)
        if s.startswith("]", i):
            return out, i + 1
        if not s.startswith(",", i):
            raise ValueError(f"expected ',' or ']' at {i}")
        i += 1
