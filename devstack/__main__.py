"""``python -m devstack``: see devstack.cli."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
