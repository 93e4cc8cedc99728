"""The wall clock the center counts days and retention by.

Request ids are remembered per UTC day (the filters of buckets/seen.py, the spend log's daily
partitions); ``offset_s`` moves the clock for those only, so a test can let a week pass.
Deadlines, leases and TTLs in Redis keep real time.
"""

from __future__ import annotations

import time

DAY_S = 86_400


class Clock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        """Seconds since 1970-01-01 UTC."""
        return time.time() + self.offset_s

    def day(self) -> int:
        """Days since 1970-01-01, UTC."""
        return int(self.now() // DAY_S)


def days_kept(retention_s: int) -> int:
    """Days of filters and spend-log partitions kept, today included: every id served within
    ``retention_s`` is in one of them (and one served at most a day longer ago may be)."""
    return -(-retention_s // DAY_S) + 1
