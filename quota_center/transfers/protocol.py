"""The transfer protocol: moving budget between two buckets that live under different hash tags.

Steps (DESIGN "Data placement"): take the amount on the source and record it as
pending there; write the ledger row; credit the target if that transfer id was not
credited yet; clear the pending record. A crash between any two steps leaves a
pending record that the sweeper resolves by the ledger: row present, finish the
credit; row absent, write an abort row (the UNIQUE transfer id makes a late ledger
write lose) and put the amount back. Nothing is lost or doubled.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quota_center.buckets.store import BucketStore, Outcome, Pending, TakeMode
from quota_center.errors import BucketLost, StaleGeneration
from quota_center.holders import ledger_only
from quota_center.ledger.models import LedgerEntry, RecordOutcome
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import TRANSFERRED, TRANSFERS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_transfer_id(budget_id: str) -> str:
    return f"t:{budget_id}:{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Movement:
    """One transfer to make: from ``source`` to ``target`` within one budget generation."""

    budget_id: str
    source: str
    target: str
    amount: int
    gen: int
    kind: str
    actor: str
    reason: str


class Transfers:
    def __init__(self, buckets: BucketStore, ledger: LedgerStore) -> None:
        self.buckets = buckets
        self.ledger = ledger
        # Marks a budget active before budget moves between its holders (budgets/activity.py): the
        # sweeper looks only at active budgets, and must find a transfer a crash left pending.
        self.touch: Callable[[str], Awaitable[None]] | None = None

    async def move(self, m: Movement, mode: TakeMode = "exact", transfer_id: str | None = None) -> int:
        """Run all four steps; return the amount moved (0 if the source could not cover it).

        With ``mode="upto"`` whatever the source holds, up to ``m.amount``, is moved.
        An error after the take (PostgreSQL down, a crash) leaves the pending record for
        the sweeper, which completes or undoes it by the ledger.
        """
        tid = transfer_id or new_transfer_id(m.budget_id)
        if self.touch is not None:
            await self.touch(m.budget_id)
        took = await self.buckets.take(m.budget_id, m.source, tid, m.amount, mode, m.gen, m.target, now_ms())
        if took.status == "SHORT":
            return 0
        self._check(m, took, m.source)
        return await self.complete(m, tid, took.value)

    async def complete(self, m: Movement, transfer_id: str, amount: int) -> int:
        """Steps 2 to 4 of a transfer whose take (``amount`` pending on the source) is done.

        Scripts that take as part of a larger decision (an agent's usage report releasing
        budget, an expired lease) record the pending transfer themselves and finish here.
        """
        tid = transfer_id
        if self.touch is not None:
            await self.touch(m.budget_id)
        entry = LedgerEntry(m.budget_id, tid, m.kind, m.source, m.target, amount, m.actor, m.reason, m.gen)
        outcome = await self.ledger.record(entry)
        if outcome in (RecordOutcome.COMMITTED, RecordOutcome.ALREADY_COMMITTED):
            await self.finish(m.budget_id, Pending(tid, m.source, m.target, amount, m.gen, 0))
            TRANSFERS.labels(m.kind, "committed").inc()
            TRANSFERRED.labels(m.kind).inc(amount)
            return amount
        # Aborted by the sweeper, or refused because the budget was rebuilt meanwhile:
        # the ledger will never hold this transfer, so the take is undone.
        await self.buckets.restore(m.budget_id, m.source, tid)
        TRANSFERS.labels(m.kind, outcome.value).inc()
        if outcome is RecordOutcome.STALE:
            raise StaleGeneration(m.budget_id)
        return 0

    async def finish(self, budget_id: str, p: Pending) -> None:
        """Credit a committed transfer to its target (at most once) and clear its pending record."""
        if ledger_only(p.target):
            # An in-doubt holder has no bucket: the ledger row is the whole of the credit.
            await self.buckets.clear(budget_id, p.source, p.transfer_id)
            return
        credited = await self.buckets.credit(budget_id, p.target, p.transfer_id, p.amount, p.gen)
        # STALE: the target was rebuilt from a ledger that already counts the amount.
        # LOST: the rebuild that follows counts it as well. Either way the record is done.
        await self.buckets.clear(budget_id, p.source, p.transfer_id)
        if credited.status == "LOST":
            raise BucketLost(budget_id, p.target)

    async def resolve(self, budget_id: str, p: Pending, actor: str) -> str:
        """Settle a stale pending record by the ledger; return what was done."""
        if await self.ledger.abort(budget_id, p.transfer_id, actor, "pending transfer found stale"):
            await self.buckets.restore(budget_id, p.source, p.transfer_id)
            TRANSFERS.labels("sweep", "aborted").inc()
            return "aborted"
        await self.finish(budget_id, p)
        TRANSFERS.labels("sweep", "completed").inc()
        return "completed"

    @staticmethod
    def _check(m: Movement, result: Outcome, holder: str) -> None:
        if result.status == "LOST":
            raise BucketLost(m.budget_id, holder)
        if result.status == "STALE":
            raise StaleGeneration(m.budget_id)
