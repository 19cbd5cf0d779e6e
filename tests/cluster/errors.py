"""The one exception type the harness raises for problems a user can fix."""

from __future__ import annotations


class HarnessError(RuntimeError):
    """Something the local cluster needs is missing or failed; the message says what."""
