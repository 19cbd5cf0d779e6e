"""A real single-node Kubernetes for the tests, built from source and run locally.

See tests/cluster/README.md. Public API: `up`, `down`, `running`, `bin_path`,
`build_containerfile`, `HarnessError`.
"""

from __future__ import annotations

from .binaries import bin_path
from .errors import HarnessError
from .harness import ClusterInfo, down, running, up
from .images import build_containerfile

__all__ = [
    "ClusterInfo",
    "HarnessError",
    "bin_path",
    "build_containerfile",
    "down",
    "running",
    "up",
]
