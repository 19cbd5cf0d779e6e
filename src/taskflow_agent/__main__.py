"""``python -m taskflow_agent ...`` (the static executable calls the same ``cli.main``)."""

from __future__ import annotations

import sys

from taskflow_agent.cli import main

sys.exit(main(sys.argv[1:]))
