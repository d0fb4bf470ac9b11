"""`python -m core` runs the `replicadesk` command (used where the entry point is not on PATH)."""

import sys

from core.cli.main import main

sys.exit(main())
