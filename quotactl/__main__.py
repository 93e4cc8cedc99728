"""Allow ``python -m quotactl``."""

from quotactl.main import main

raise SystemExit(main())
