"""The spend log's days: the next ones created ahead, those past the retention dropped.

The log is partitioned by UTC day (migration 0006): dropping a day is cheap and leaves no dead
rows behind, and what it consumed per sub-bucket stays counted (spend_rollup) for a settlement
after a Redis loss. The days kept are those the seen filters cover (clock.days_kept): a retry
within the retention finds its request here; one older than the retention (and at most a day
more) is new. See docs/center.md#request-ids.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from quota_center.clock import days_kept
from quota_center.ledger.store import LedgerStore
from quota_center.loop_failures import LoopFailures, every

log = logging.getLogger(__name__)


class SpendDays:
    def __init__(self, ledger: LedgerStore, retention_s: int) -> None:
        self.ledger = ledger
        self.days = days_kept(retention_s)
        self.failures = LoopFailures("spend_days")

    async def tend(self) -> int:
        """Create today's and tomorrow's partitions; drop the days older than the days kept.
        Returns how many days were dropped."""
        today = self.ledger.today()
        for day in (today, today + timedelta(days=1)):
            await self.ledger.ensure_spend_day(day)
        dropped = await self.ledger.expire_spend_days(today - timedelta(days=self.days - 1))
        for day in dropped:
            log.info("spend log: day %s dropped (past the retention; its consumption is kept in sum)", day)
        return len(dropped)

    async def run(self, interval_s: float) -> None:
        await every(interval_s, self.tend, self.failures)
