"""Releases reservations whose TTL has passed, in the background (promise 6).

Every round takes the budgets whose earliest reservation is due from the schedule
(``budgets/activity.py``: a reservation schedules its budget at its expiry), runs
``expire.lua`` on their sub-buckets in bounded batches, and schedules each again at the
next reservation it finds. Budgets without reservations due cost nothing. The script is what makes an ending exactly once: a confirm or
cancel racing with the sweep, or another center process sweeping too, finds the
reservation ended. A late confirm or cancel does not wait for this loop: it
releases its own reservation (see ``quota_center.spending.reservations``). A sub-bucket
missing from Redis is skipped: the rebuild owns it, and reservations it held are
dropped (in doubt), not released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from quota_center.buckets.reservations import ReservationStore
from quota_center.budgets.activity import Activity
from quota_center.budgets.registry import Registry
from quota_center.budgets.sellout import SellOut
from quota_center.loop_failures import LoopFailures, every
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
        activity: Activity,
        *,
        clock: Callable[[], int] = now_ms,
        batch: int = BATCH,
        sellout: SellOut | None = None,
    ) -> None:
        self.registry = registry
        self.sellout = sellout  # told when an expiry released budget (a sold-out budget may serve again)
        self.store = store
        self.activity = activity
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

    async def next_due(self, budget_id: str) -> int | None:
        """When the budget's earliest reservation expires (None: it has none)."""
        meta = await self.registry.get(budget_id)
        firsts = [await self.store.first_expiry(budget_id, index) for index in range(meta.sub_buckets)]
        due = [f for f in firsts if f is not None]
        return min(due) if due else None

    async def expire_all(self) -> int:
        """Release what is due in every scheduled budget; one that fails is counted, scheduled again
        at once, and the others go on."""
        released = 0
        now = self.clock()
        for budget_id, due in await self.activity.due(now):
            stop_if_cancelled()
            # Off the schedule before its reservations are read: one made meanwhile is either read
            # below or schedules the budget itself (docs/center.md#activity).
            if not await self.activity.taken(budget_id, due):
                continue  # scheduled earlier meanwhile: next round
            try:
                released += await self.expire_budget(budget_id)
                following = await self.next_due(budget_id)
            except Exception as exc:
                await self.activity.expiring(budget_id, now)
                self.failures.failed(exc, budget_id)
            else:
                if following is not None:
                    await self.activity.expiring(budget_id, following)
                self.failures.succeeded(budget_id)
        return released

    async def run(self, interval_s: float) -> None:
        """Sweep forever; an error (Redis or PostgreSQL down) is logged and retried next round."""
        await every(interval_s, self._pass, self.failures)

    async def _pass(self) -> None:
        released = await self.expire_all()
        if released:
            log.info("released %d expired reservations", released)
