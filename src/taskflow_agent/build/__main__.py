"""``python3 -m taskflow_agent.build OUT``: see the package docstring."""

from __future__ import annotations

import sys

from taskflow_agent.build import main

sys.exit(main(sys.argv[1:]))
