"""Releases reservations whose TTL has passed, in the background (promise 6).

Every round walks every budget's sub-buckets and runs ``expire.lua`` on each in
bounded batches. The script is what makes an ending exactly once: a confirm or
cancel racing with the sweep, or another center process sweeping too, finds the
reservation ended. A late confirm or cancel does not wait for this loop: it
releases its own reservation (see ``quota_center.spending.reservations``). A sub-bucket
missing from Redis is skipped: the rebuild owns it, and reservations it held are
dropped (in doubt), not released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from quota_center.buckets.reservations import ReservationStore
from quota_center.budgets.registry import Registry
from quota_center.budgets.sellout import SellOut
from quota_center.loop_failures import LoopFailures
from quota_center.metrics import RESERVATIONS
from quota_center.transfers.protocol import now_ms
from quota_rules.loops import stop_if_cancelled

log = logging.getLogger(__name__)

# Reservations looked at per script call: each call blocks its Redis shard for its duration.
BATCH = 200
# Batches per sub-bucket per round, so that one flooded sub-bucket cannot starve the others.
MAX_BATCHES = 50


class Expiry:
    def __init__(
        self,
        registry: Registry,
        store: ReservationStore,
        budget_ids: Callable[[], Awaitable[list[str]]],
        *,
        clock: Callable[[], int] = now_ms,
        batch: int = BATCH,
        sellout: SellOut | None = None,
    ) -> None:
        self.registry = registry
        self.sellout = sellout  # told when an expiry released budget (a sold-out budget may serve again)
        self.store = store
        self.budget_ids = budget_ids
        self.clock = clock
        self.failures = LoopFailures("expiry")
        self.batch = batch

    async def expire_budget(self, budget_id: str) -> int:
        """Release this budget's reservations that have expired by now; return how many."""
        meta = await self.registry.get(budget_id)
        now = self.clock()
        released = 0
        for index in range(meta.sub_buckets):
            for _ in range(MAX_BATCHES):
                sweep = await self.store.expire_due(budget_id, index, now, self.batch)
                released += sweep.released
                RESERVATIONS.labels("expired").inc(sweep.released)
                if sweep.lost or sweep.looked_at < self.batch or sweep.removed == 0:
                    break
        if released and self.sellout is not None:
            await self.sellout.changed(budget_id)
        return released

    async def expire_all(self) -> int:
        """Release what is due in every budget; one that fails is counted and the others go on."""
        released = 0
        for budget_id in await self.budget_ids():
            stop_if_cancelled()
            try:
                released += await self.expire_budget(budget_id)
            except Exception as exc:
                self.failures.failed(exc, budget_id)
            else:
                self.failures.succeeded(budget_id)
        return released

    async def run(self, interval_s: float) -> None:
        """Sweep forever; an error (Redis or PostgreSQL down) is logged and retried next round."""
        while True:
            try:
                released = await self.expire_all()
                if released:
                    log.info("released %d expired reservations", released)
            except Exception as exc:
                self.failures.failed(exc)
            else:
                self.failures.succeeded()
            stop_if_cancelled()
            await asyncio.sleep(interval_s)
