"""Logging setup: ``text`` (key=value tail) or ``json`` (one object per line).

Anything passed via ``extra=`` (reconcile lines carry ``namespace``, ``name``, ``uid``) is
printed in both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The non-standard attributes of a record (what ``extra=`` added); dict values are
    flattened (reconcile lines carry ``task={"namespace", "name", "uid"}``)."""
    out: dict[str, Any] = {}
    for k, v in record.__dict__.items():
        if k in _STANDARD or k.startswith("_"):
            continue
        if isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def _ts(record: logging.LogRecord) -> str:
    t = datetime.fromtimestamp(record.created, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_ts(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        tail = " ".join(f"{k}={_quote(v)}" for k, v in extras(record).items())
        if tail:
            line = f"{line} {tail}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _quote(v: Any) -> str:
    s = str(v)
    return json.dumps(s) if (not s or any(c in s for c in ' "=')) else s


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in extras(record).items():
            doc[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure the root logger (idempotent: replaces handlers set by an earlier call)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party libraries are chatty at debug level; keep them at warning unless asked.
    noisy_level = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("aiohttp.access", "kubernetes_asyncio"):
        logging.getLogger(name).setLevel(max(noisy_level, logging.INFO))
