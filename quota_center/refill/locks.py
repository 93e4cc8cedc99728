"""The per-budget locks of one center process.

Every movement of a budget's buckets by this process (refill, merge, fill, release, a grant to an
agent) is made under its budget's lock, so that concurrent short requests queue and find the merge
already done instead of each making it. Other center processes are kept safe by the transfer
protocol, not by this lock.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class BudgetLocks:
    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __call__(self, budget_id: str) -> asyncio.Lock:
        return self._locks[budget_id]
