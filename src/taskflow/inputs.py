"""What the commands read from the user: the ``-f FILE|-`` of ``taskflow render`` and
``kubectl taskflow run``. I/O shell (files and stdin), so not in the pure ``api`` layer."""

from __future__ import annotations

import sys
from typing import Any

import yaml


def read_documents(filename: str) -> list[Any]:
    """The YAML (or JSON) documents of FILE, empty ones left out; '-' reads stdin (the
    CLIs' ``-f``). Raises OSError or yaml.YAMLError."""
    if filename == "-":
        text = sys.stdin.read()
    else:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    return [d for d in yaml.safe_load_all(text) if d is not None]
