"""Allow ``python -m quota_center.ctl``."""

from quota_center.ctl.main import main

raise SystemExit(main())
