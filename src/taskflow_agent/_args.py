"""What ``step`` and ``install`` are asked to do, and the agent's one way of speaking.

Its own module so that ``cli`` (which parses) and ``_step`` (which runs) both import it and
not each other.
"""

from __future__ import annotations

import sys

# The kubelet reads at most this much of a container's termination message (and keeps
# less when the pod has many containers: the operator passes that as --message-limit).
KUBELET_MESSAGE_MAX = 4096
#: the most ``--retries`` (the Task API's limit too)
MAX_RETRIES = 10
#: the longest wait before a retry, however far the delay has doubled
RETRY_DELAY_MAX = 60.0


class StepArgs:
    """``step``'s options (defaults are the pod layout's paths)."""

    def __init__(self) -> None:
        self.name = ""
        self.prev: str | None = None
        self.timeout: float | None = None
        #: runs of the command after the first when it fails (non-zero exit or timed out)
        self.retries = 0
        #: seconds before the first retry; doubled for each next one, up to RETRY_DELAY_MAX
        self.retry_delay = 1.0
        self.grace = 10.0
        self.on_error = "stopAndFail"
        self.results: list[str] = []
        self.script: str | None = None
        self.termination_path: str | None = None
        self.run_dir = "/taskflow/run"
        self.wait = "auto"
        self.poll_interval = 0.05
        #: bytes the state may take: this container's share of the kubelet's budget
        self.message_limit = KUBELET_MESSAGE_MAX
        self.argv: list[bytes] = []
        #: (platform, length): ARGV is one argv per platform, this machine's runs
        self.arches: list[tuple[str, int]] = []


class InstallArgs:
    def __init__(self, directory: str, source: str | None) -> None:
        self.directory = directory
        self.source = source


def print_error(message: str) -> None:
    """One line on stderr, prefixed ``taskflow-agent: `` (the only output the agent makes
    itself). It does not exit: the caller still records the state."""
    sys.stderr.write(f"taskflow-agent: {message}\n")
    sys.stderr.flush()
