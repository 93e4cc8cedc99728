"""Exactly once across a Redis loss (promise 4): what a request did before it, from the spend log.

See docs/center.md#recall.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from quota_center.budgets.registry import BudgetMeta
from quota_center.errors import Unavailable
from quota_center.holders import SUB_PREFIX, parse_holder
from quota_center.ledger.spend_log import SpendEntry
from quota_center.ledger.store import LedgerStore
from quota_center.recovery.settlement import Settlement, blocking
from quota_center.recovery.writebehind import WriteBehind
from quota_rules import messages

log = logging.getLogger(__name__)

POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class Prior:
    """The answer a request already had before the loss; ``code`` is EXISTS or CONFLICT."""

    code: str
    amount: int
    message: str
    entry: SpendEntry  # what the request id did before the loss
    refundable: int = 0


@dataclass(frozen=True, slots=True)
class Restore:
    """A deduction's record as the spend log has it: its amount, what was returned of it, and
    the sub-bucket that served it (None if the log names another holder)."""

    amount: int
    returned: int
    index: int | None


def _conflict(entry: SpendEntry) -> Prior:
    return Prior("CONFLICT", 0, messages.CONFLICT.format(r=entry.request_id), entry)


class Recall:
    def __init__(
        self,
        ledger: LedgerStore,
        log: WriteBehind,
        settlement: Settlement,
        *,
        retention_s: float,
        gate_ms: float,
    ) -> None:
        self.ledger = ledger
        self.log = log
        self.settlement = settlement
        self.retention_s = retention_s
        self.gate_s = gate_ms / 1000
        self._open: set[tuple[str, int]] = set()
        self._locks: defaultdict[tuple[str, int], asyncio.Lock] = defaultdict(asyncio.Lock)

    def active(self, meta: BudgetMeta) -> bool:
        """True if the budget was rebuilt within the retention window: requests served before
        the loss may be retried, and only the log remembers them."""
        if meta.rebuilt_at is None:
            return False
        return (datetime.now(UTC) - meta.rebuilt_at).total_seconds() < self.retention_s

    async def deduction(self, meta: BudgetMeta, request_id: str, amount: int) -> Prior | None:
        prior = await self._lookup(meta, request_id)
        if prior is None:
            return None
        if (prior.kind, prior.budget_id, prior.amount) == ("deduct", meta.budget_id, amount):
            return Prior("EXISTS", amount, messages.APPLIED.format(r=request_id), prior)
        return _conflict(prior)

    async def refund(self, meta: BudgetMeta, request_id: str, deduction_id: str, amount: int) -> Prior | None:
        prior = await self._lookup(meta, request_id)
        if prior is None:
            return None
        if (prior.kind, prior.budget_id, prior.amount, prior.deduction_id) != (
            "return",
            meta.budget_id,
            amount,
            deduction_id,
        ):
            return _conflict(prior)
        deduction = await self.ledger.spend_lookup(deduction_id)
        left = 0 if deduction is None else deduction.amount - await self.ledger.logged_returns(deduction_id)
        return Prior("EXISTS", amount, messages.RETURN_APPLIED.format(r=request_id), prior, max(left, 0))

    async def ending(self, meta: BudgetMeta, reservation_id: str) -> SpendEntry | None:
        """How a reservation of this budget ended before a Redis loss, by the log: its confirm
        (kind ``deduct``) or its cancel (kind ``cancel``); None if the log has neither."""
        prior = await self._lookup(meta, reservation_id)
        if prior is None or prior.budget_id != meta.budget_id or prior.kind not in ("deduct", "cancel"):
            return None
        return prior

    async def restore(self, meta: BudgetMeta, deduction_id: str) -> Restore | None:
        """What recreates the record of a deduction of this budget whose record Redis no longer
        has: made before a Redis loss (an older generation), or in this generation longer ago
        than the request window (docs/center.md#request-ids). None if the log has no such
        deduction. Its returns are all in the log: a return keeps the deduction's record a window
        longer, so a record gone means the last return is older than the window."""
        d = await self.ledger.spend_lookup(deduction_id)
        if d is None or d.kind != "deduct" or d.budget_id != meta.budget_id or d.gen > meta.gen:
            return None
        await self.log.flushed_past(time.monotonic())
        if d.gen < meta.gen:
            waiting = await self._poll(lambda: self.settlement.waiting_for(meta, d.gen))
            if waiting:
                raise Unavailable(
                    f"deduction {deduction_id} was made before a Redis loss and its returns may not all"
                    f" be in the spend log yet (waiting for {', '.join(waiting)}); retry later"
                )
        index = parse_holder(d.holder) if d.holder.startswith(SUB_PREFIX) else None
        return Restore(d.amount, await self.ledger.logged_returns(deduction_id), index)

    async def _lookup(self, meta: BudgetMeta, request_id: str) -> SpendEntry | None:
        await self._gate(meta)
        return await self.ledger.spend_lookup(request_id)

    async def _gate(self, meta: BudgetMeta) -> None:
        key = (meta.budget_id, meta.gen)
        if key in self._open:
            return
        async with self._locks[key]:
            if key in self._open:
                return
            cutoff = await self.ledger.db_now()
            await self.log.flushed_past(time.monotonic())
            waiting = await self._poll(lambda: self._live_behind(cutoff))
            if waiting:
                log.warning(
                    "budget %s: spend log lookups proceed without %s (not caught up after %.1f s)",
                    meta.budget_id,
                    ", ".join(waiting),
                    self.gate_s,
                )
            self._open.add(key)

    async def _live_behind(self, cutoff: datetime) -> list[str]:
        since = cutoff - self.settlement.dead_after
        rows = await self.ledger.running_instances(seen_since=since, started_before=cutoff)
        return [f"center {i.name or i.instance_id}" for i in blocking(rows, cutoff=cutoff, since=since)]

    async def _poll(self, check: Callable[[], Awaitable[list[str]]]) -> list[str]:
        deadline = time.monotonic() + self.gate_s
        while True:
            waiting = await check()
            if not waiting or time.monotonic() >= deadline:
                return waiting
            await asyncio.sleep(POLL_S)
