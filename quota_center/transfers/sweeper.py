"""Resolves pending transfers left behind by a crash or an outage, by what the ledger says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from quota_center.buckets.store import BucketStore, Pending
from quota_center.budgets.registry import Registry
from quota_center.errors import BucketLost, UnknownBudget
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.store import LedgerStore
from quota_center.loop_failures import LoopFailures
from quota_center.recovery.rebuild import Recovery
from quota_center.recovery.settlement import Settlement
from quota_center.transfers.protocol import Transfers, now_ms

log = logging.getLogger(__name__)

ACTOR = "sweeper"
# Budgets whose buckets are read in one pipeline.
PAGE = 200


# A center is alive while its spend-log heartbeat (every 200 ms by default) is this recent.
ALIVE_WITHIN_MS = 2_000
# Centers' clocks and the database's may differ by this much.
CLOCK_MARGIN_MS = 500


class Sweeper:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        transfers: Transfers,
        recovery: Recovery,
        budget_ids: Callable[[], Awaitable[list[str]]],
        stale_ms: int,
        settlement: Settlement | None = None,
        *,
        ledger: LedgerStore | None = None,
        alive_within_ms: int = ALIVE_WITHIN_MS,
    ) -> None:
        self.registry = registry
        self.buckets = buckets
        self.transfers = transfers
        self.recovery = recovery
        # The budgets to sweep: the active set (budgets/activity.py; a transfer marks its budget first).
        self.budget_ids = budget_ids
        self.stale_ms = stale_ms
        self.settlement = settlement
        # Which centers are alive (the spend log's heartbeats): a transfer older than every one of
        # them has no owner left, and is resolved at once instead of after ``stale_ms``.
        self.ledger = ledger
        self.alive_within_ms = alive_within_ms
        self.failures = LoopFailures("sweeper")

    async def orphaned_before(self) -> int:
        """Unix ms before which no center alive now had started: a transfer created earlier was
        made by a center that is gone (killed, say), so nobody will finish it but the sweeper.
        0 when that is not known."""
        if self.ledger is None:
            return 0
        now = datetime.now(UTC)
        live = await self.ledger.running_instances(
            seen_since=now - timedelta(milliseconds=self.alive_within_ms),
            started_before=now + timedelta(days=1),
        )
        if not live:
            return 0  # not even this center's heartbeat: nothing can be concluded
        oldest = min(i.started_at for i in live)
        return int(oldest.timestamp() * 1000) - CLOCK_MARGIN_MS

    async def sweep_budget(
        self, budget_id: str, stale_ms: int | None = None, orphaned_before_ms: int = 0
    ) -> dict[str, int]:
        """Resolve this budget's pending transfers older than ``stale_ms``, and those created
        before ``orphaned_before_ms`` (their center is gone); count what was done."""
        meta = await self.registry.get(budget_id)
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        holders += await self.buckets.agent_holders(budget_id)
        views = [await self.buckets.read(budget_id, holder) for holder in holders]
        # A lost bucket is rebuilt on its next use; its pending records went with it.
        pending = [p for v in views if v is not None for p in v.pending]
        return await self._resolve(budget_id, pending, stale_ms, orphaned_before_ms)

    async def _resolve(
        self, budget_id: str, pending: list[Pending], stale_ms: int | None, orphaned_before_ms: int
    ) -> dict[str, int]:
        """Resolve those of the budget's pending transfers that are due."""
        limit = self.stale_ms if stale_ms is None else stale_ms
        done = {"aborted": 0, "completed": 0}
        for p in pending:
            if now_ms() - p.created_ms < limit and p.created_ms >= orphaned_before_ms:
                continue
            try:
                done[await self.transfers.resolve(budget_id, p, ACTOR)] += 1
            except BucketLost:
                await self.recovery.rebuild(budget_id)
        return done

    async def sweep_all(self) -> dict[str, int]:
        """Sweep every active budget, a page at a time: a page's buckets are read in one pipeline
        (docs/center.md#activity). A page that cannot be read so (a budget it cannot parse, say) is
        swept budget by budget: one that fails is counted and the others are still swept."""
        totals = {"aborted": 0, "completed": 0}
        orphaned_before = await self.orphaned_before()
        ids = await self.budget_ids()
        for start in range(0, len(ids), PAGE):
            page = ids[start : start + PAGE]
            try:
                found = await self._page_pending(page)
            except Exception:
                found = {}
            for budget_id in page:
                try:
                    if budget_id in found:
                        done = await self._resolve(budget_id, found[budget_id], None, orphaned_before)
                    else:
                        done = await self.sweep_budget(budget_id, orphaned_before_ms=orphaned_before)
                except Exception as exc:
                    self.failures.failed(exc, budget_id)
                    continue
                self.failures.succeeded(budget_id)
                for what, n in done.items():
                    totals[what] += n
        return totals

    async def _page_pending(self, page: list[str]) -> dict[str, list[Pending]]:
        """The pending transfers of every bucket of these budgets, read in two pipelines; budgets
        not known are left out."""
        known = []
        for budget_id in page:
            with contextlib.suppress(UnknownBudget):
                known.append(await self.registry.get(budget_id))
        agents = await self.buckets.agent_holders_many([m.budget_id for m in known])
        wanted = [
            (m.budget_id, h)
            for m, theirs in zip(known, agents, strict=True)
            for h in [MAIN, *(sub_holder(i) for i in range(m.sub_buckets)), *theirs]
        ]
        found: dict[str, list[Pending]] = {m.budget_id: [] for m in known}
        for (budget_id, _), pending in zip(wanted, await self.buckets.pending_many(wanted), strict=True):
            found[budget_id] += pending
        return found

    async def run(self, interval_s: float) -> None:
        """Sweep forever; an error (Redis or PostgreSQL down) is logged and retried next round."""
        while True:
            try:
                done = await self.sweep_all()
                if any(done.values()):
                    log.info("sweeper resolved pending transfers: %s", done)
                if self.settlement is not None:
                    # Lost sub-buckets whose spend log was not complete at the rebuild.
                    await self.settlement.settle_open()
            except Exception as exc:
                self.failures.failed(exc)
            else:
                self.failures.succeeded()
            await asyncio.sleep(interval_s)
