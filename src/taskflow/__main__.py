"""``python -m taskflow`` = the ``taskflow`` command."""

import sys

from taskflow.cli import main

sys.exit(main())
