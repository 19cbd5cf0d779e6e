"""Times in a TaskStatus: RFC 3339 timestamps, the START column and Go-style durations."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def kubelet_time(dt: datetime | None) -> str | None:
    """A kubelet timestamp, formatted; the zero time some runtimes report (e.g. ``startedAt``
    of a container that could not start) counts as absent."""
    if dt is None or utc(dt).year < 2000:
        return None
    return format_time(dt)


def format_time(dt: datetime) -> str:
    """RFC 3339, UTC, whole seconds: ``2024-01-06T22:19:24Z``."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_start_at(dt: datetime) -> str:
    """The START column: ``2024-01-06 22:19:24`` (UTC)."""
    return utc(dt).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any RFC 3339 timestamp)."""
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``0s``, ``31s``, ``1m5s``,
    ``1h0m0s``, ``25h1m1s`` (fractions are truncated, negatives count as 0)."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"
