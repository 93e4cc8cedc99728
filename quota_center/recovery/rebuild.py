"""Rebuild a budget's buckets from the ledger after Redis lost them.

The ledger is the commit point, so main is rebuilt to exactly what the ledger says
main holds. What the sub-buckets held (balance and consumption since their last
transfer) cannot be known any more: the budget moves to a new generation, the old
generation's sub-bucket balances stay in the ledger as *in doubt* (counted as
spent, never re-issued), each under a holder of its own ('doubt:sub:3@1'), and
fresh, empty sub-buckets are created. Transfers still in flight carry the old
generation; Redis (STALE) and the ledger refuse them, so none is counted twice.
Afterwards the write-behind spend log settles the in-doubt holders
(quota_center/recovery/settlement.py, started through ``on_rebuilt``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from quota_center.buckets.store import BucketStore
from quota_center.budgets.registry import Registry
from quota_center.budgets.sellout import SellOut
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import REBUILDS

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        ledger: LedgerStore,
        on_rebuilt: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.buckets = buckets
        self.ledger = ledger
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Told each rebuilt budget: the settlement settles its in-doubt holders from the spend log.
        self.on_rebuilt = on_rebuilt
        # Its sold-out mark is dropped: the rebuilt budget is decided on afresh.
        self.sellout: SellOut | None = None

    async def rebuild(self, budget_id: str) -> bool:
        """Rebuild the budget's buckets unless they are all present in the current generation.

        Returns True if this call rebuilt them. Safe to call concurrently, from any
        number of center processes: the generation bump in PostgreSQL is a
        compare-and-set, and bucket initialisation never goes back a generation.
        """
        async with self._locks[budget_id]:
            self.registry.forget(budget_id)
            meta = await self.registry.get(budget_id)
            if await self._intact(budget_id, meta.sub_buckets, meta.gen):
                return False
            rebuilt = await self.ledger.bump_generation(budget_id, meta.gen)
            await self.buckets.init_bucket(budget_id, MAIN, rebuilt.main, rebuilt.gen, rebuilt.state)
            for index in range(meta.sub_buckets):
                await self.buckets.init_bucket(budget_id, sub_holder(index), 0, rebuilt.gen, rebuilt.state)
            self.registry.forget(budget_id)
            if self.sellout is not None:
                await self.sellout.changed(budget_id)
            REBUILDS.inc()
            if self.on_rebuilt is not None:
                self.on_rebuilt(budget_id)
            log.warning(
                "budget %s rebuilt from the ledger: generation %d, main %d",
                budget_id,
                rebuilt.gen,
                rebuilt.main,
            )
            return True

    async def _intact(self, budget_id: str, sub_buckets: int, gen: int) -> bool:
        for holder in [MAIN, *(sub_holder(i) for i in range(sub_buckets))]:
            view = await self.buckets.read(budget_id, holder)
            if view is None or view.gen != gen:
                return False
        return True
