"""``python -m loadtest.bench``: see loadtest.bench.cli."""

from __future__ import annotations

import sys

from loadtest.bench.cli import main

sys.exit(main())
