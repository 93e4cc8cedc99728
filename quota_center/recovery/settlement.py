"""Settling what lost sub-buckets held, from the write-behind spend log (promises 1, 2 and 5).

See docs/center.md#settlement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from quota_center.buckets.store import BucketStore, Pending
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.budgets.sellout import SellOut
from quota_center.errors import BucketLost, Unavailable
from quota_center.holders import MAIN, SUB_PREFIX, sub_holder
from quota_center.ledger.models import RecordOutcome
from quota_center.ledger.spend_log import DoubtRow, HolderNotFound, InstanceRow
from quota_center.ledger.store import LedgerStore
from quota_center.loop_failures import LoopFailures
from quota_center.metrics import IN_DOUBT_SETTLED
from quota_center.recovery.writebehind import WriteBehind
from quota_center.transfers.protocol import Transfers, now_ms
from quota_rules.limits import MAX_AMOUNT, InvalidInput, check_budget_id

log = logging.getLogger(__name__)

ACTOR = "settlement"
_EPOCH = datetime.min.replace(tzinfo=UTC)


# -- pure rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with one in-doubt holder now."""

    book: int  # booked as consumed now; negative: booked back from consumed into doubt
    release: int | None  # then released to main (the holder is settled); None: the rest stays


def plan(*, balance: int, booked: int, logged: int, complete: bool) -> Step:
    """Settle one in-doubt holder from the log.

    ``balance``: what it has in doubt now; ``booked``: what earlier passes booked as consumed;
    ``logged``: the sub-bucket's net consumption in its generation according to the log.

    The lost sub-bucket held its original balance minus what it really consumed, and never less
    than 0, so its consumption is at most the original balance: booking it keeps the holder >= 0.
    Logged consumption may exceed that only if the log is wrong; then no more than the balance
    is booked. The log may also show less than was consumed (entries not written yet, or more
    returns than deductions from refunds of older generations): what is not booked stays in
    doubt, still counted as spent, and is released only once the log is complete, when logged is
    exactly what the sub-bucket consumed.
    """
    book = min(logged - booked, balance)
    rest = balance - book
    return Step(book, rest if complete else None)


def blocking(instances: Iterable[InstanceRow], *, cutoff: datetime, since: datetime) -> list[InstanceRow]:
    """The centers whose log may still lack an operation started before ``cutoff``.

    A center does not count if it started at or after the cutoff, stopped cleanly (after its final
    flush), was last seen before ``since`` (gone, and fenced by its lease, before the operations in
    question could have run), or has written its log past the cutoff.
    """
    return [
        i
        for i in instances
        if i.started_at < cutoff and i.stopped_at is None and i.seen_at >= since and i.flushed_until < cutoff
    ]


@dataclass(frozen=True, slots=True)
class Settled:
    """Outcome of a manual settlement; ``code`` is a ResultCode name without its prefix."""

    code: str
    settled: int
    consumed: int
    returned: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class Known:
    """What the ledger, the spend log and the agents' reports know about an in-doubt holder."""

    in_doubt: int
    booked: int
    logged: int = 0
    log_complete: bool = False
    waiting_for: tuple[str, ...] = ()
    at_least: int = 0
    at_most: int = 0
    note: str = ""


def bounds(*, in_doubt: int, booked: int, logged: int, complete: bool) -> tuple[int, int]:
    """What the holder consumed of what is still in doubt, at least and at most (pure).

    Every logged deduction was consumed: at least what the log shows beyond what is booked;
    never more than is in doubt. A complete log is the exact answer.
    """
    least = min(max(logged - booked, 0), max(in_doubt, 0))
    return (least, least) if complete else (least, max(in_doubt, 0))


# -- the service -----------------------------------------------------------------------------


class Settlement:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        ledger: LedgerStore,
        transfers: Transfers,
        log: WriteBehind,
        *,
        dead_after_s: float,
        release: bool = True,
        retry_s: float = 5.0,
    ) -> None:
        self.registry = registry
        self.buckets = buckets
        self.ledger = ledger
        self.transfers = transfers
        self.log = log
        self.dead_after = timedelta(seconds=dead_after_s)
        self.auto_release = release
        self.retry_s = retry_s
        self._cutoffs: dict[tuple[str, int], datetime] = {}
        self._starts: dict[tuple[str, int], datetime] = {}
        self.failures = LoopFailures("settlement")
        # Told when a settlement gives budget back to main (a sold-out budget may serve again).
        self.sellout: SellOut | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- completeness ------------------------------------------------------------------------

    async def cutoff(self, meta: BudgetMeta) -> datetime | None:
        """A database instant after which no sub-bucket older than ``meta.gen`` can serve; None
        while one still exists (the rebuild has not reset it yet)."""
        key = (meta.budget_id, meta.gen)
        found = self._cutoffs.get(key)
        if found is None:
            for index in range(meta.sub_buckets):
                view = await self.buckets.read(meta.budget_id, sub_holder(index))
                if view is not None and view.gen < meta.gen:
                    return None
            found = self._cutoffs[key] = await self.ledger.db_now()
        return found

    async def waiting_for(self, meta: BudgetMeta, gen: int) -> list[str]:
        """Why the log of generations ``gen`` .. ``meta.gen - 1`` is not complete; [] once it is."""
        cutoff = await self.cutoff(meta)
        if cutoff is None:
            return [f"sub-buckets of {meta.budget_id} still in an older generation"]
        since = await self._start(meta.budget_id, gen) - self.dead_after
        rows = await self.ledger.running_instances(seen_since=since, started_before=cutoff)
        return [f"center {i.name or i.instance_id}" for i in blocking(rows, cutoff=cutoff, since=since)]

    async def _start(self, budget_id: str, gen: int) -> datetime:
        key = (budget_id, gen)
        if key not in self._starts:
            # Unknown (it should not be): count every center that was ever seen.
            self._starts[key] = await self.ledger.generation_start(budget_id, gen) or _EPOCH
        return self._starts[key]

    # -- automatic settlement ----------------------------------------------------------------

    async def settle_budget(self, budget_id: str) -> int:
        """One pass over the budget's lost sub-buckets in doubt; return how many are not settled yet.

        An agent's lost lease (``doubt:agent:...``) is not the spend log's to settle: the agent's
        own reports settle it (docs/agents.md, Leases).
        """
        async with self._locks[budget_id]:
            rows = [
                r
                for r in await self.ledger.doubt_holders(budget_id)
                if r.released is None and r.sub.startswith(SUB_PREFIX)
            ]
            if not rows:
                return 0
            self.registry.forget(budget_id)
            meta = await self.registry.get(budget_id)
            left = 0
            for row in sorted(rows, key=lambda r: (r.gen, r.holder)):
                if not await self._settle_holder(meta, row):
                    left += 1
            return left

    async def settle_open(self) -> int:
        """Settle every budget that has unsettled in-doubt holders (the sweeper's pass)."""
        left = 0
        for budget_id in await self.ledger.budgets_in_doubt():
            try:
                left += await self.settle_budget(budget_id)
            except Exception as exc:
                self.failures.failed(exc, budget_id)
                left += 1
            else:
                self.failures.succeeded(budget_id)
        return left

    def after_rebuild(self, budget_id: str) -> None:
        """Settle a rebuilt budget in the background, once this center's log has caught up."""
        task = asyncio.get_running_loop().create_task(self._settle_soon(budget_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _settle_soon(self, budget_id: str) -> None:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                await self.log.flushed_past(time.monotonic())
                left = await self.settle_budget(budget_id)
            except Exception:
                log.exception("settling budget %s after its rebuild failed; the sweeper retries", budget_id)
                return
            if not left:
                return
            if time.monotonic() >= deadline:
                log.warning("budget %s: %d in-doubt holders wait for the spend log", budget_id, left)
                return
            await asyncio.sleep(0.1)

    async def _settle_holder(self, meta: BudgetMeta, row: DoubtRow) -> bool:
        """Book and release what the log allows; True once the holder is settled for good."""
        if row.manual is not None:
            # An operator settled it and the release did not happen (a crash): finish it.
            return await self._release(meta, row.holder, row.balance, "manual")
        logged = await self.ledger.logged_consumption(meta.budget_id, row.gen, row.sub)
        complete = self.auto_release and not await self.waiting_for(meta, row.gen)
        step = plan(balance=row.balance, booked=row.booked, logged=logged, complete=complete)
        if step.book:
            if logged - row.booked > row.balance:
                log.error(
                    "%s of budget %s: the log shows %d consumed, more than the %d it had in doubt",
                    row.holder,
                    meta.budget_id,
                    logged - row.booked,
                    row.balance,
                )
            booked = await self.ledger.book_in_doubt(
                meta.budget_id,
                row.holder,
                step.book,
                expect_booked=row.booked,
                expect_balance=row.balance,
                actor=ACTOR,
                reason=f"consumed in generation {row.gen} according to the spend log",
            )
            if not booked:
                return False  # someone else settled meanwhile: the next pass plans afresh
            if step.book > 0:
                IN_DOUBT_SETTLED.labels("log", "consumed").inc(step.book)
        if step.release is None:
            return False
        return await self._release(meta, row.holder, step.release, "log")

    async def _release(self, meta: BudgetMeta, holder: str, amount: int, how: str) -> bool:
        """Return an in-doubt holder's whole balance to main; False if it could not be done now."""
        budget_id = meta.budget_id
        tid = f"release:{budget_id}:{holder}:{uuid.uuid4().hex}"
        reason = f"{holder} settled ({how})"
        if amount == 0:
            outcome = await self.ledger.release_in_doubt(budget_id, holder, tid, 0, meta.gen, ACTOR, reason)
            return outcome is RecordOutcome.COMMITTED
        took = await self.buckets.take(budget_id, MAIN, tid, amount, "in", meta.gen, MAIN, now_ms())
        if took.status != "OK":
            return False  # main was lost or rebuilt: the rebuild runs on its next use, then retry
        # An error here leaves the pending record to the sweeper, which finishes or drops it by
        # the ledger; the next pass then releases under a new transfer id if it was dropped.
        outcome = await self.ledger.release_in_doubt(budget_id, holder, tid, amount, meta.gen, ACTOR, reason)
        if outcome not in (RecordOutcome.COMMITTED, RecordOutcome.ALREADY_COMMITTED):
            await self.buckets.restore(budget_id, MAIN, tid)
            return False
        with contextlib.suppress(BucketLost):  # main is rebuilt from the ledger, which has the row
            await self.transfers.finish(budget_id, Pending(tid, MAIN, MAIN, amount, meta.gen, 0))
        IN_DOUBT_SETTLED.labels(how, "returned").inc(amount)
        if self.sellout is not None:
            await self.sellout.changed(budget_id)
        return True

    # -- settlement by hand ------------------------------------------------------------------

    async def known(self, budget_id: str, holder: str) -> Known:
        """What is known about an in-doubt holder, for an operator about to settle it by hand."""
        check_budget_id(budget_id)
        meta = await self.registry.get(budget_id)
        rows = {r.holder: r for r in await self.ledger.doubt_holders(budget_id)}
        row = rows.get(holder)
        if row is None:
            raise HolderNotFound(
                budget_id, holder, sorted(h for h, r in rows.items() if r.released is None and r.balance)
            )
        if not row.sub.startswith(SUB_PREFIX):
            return Known(
                row.balance,
                row.booked,
                at_least=0,
                at_most=max(row.balance, 0),
                note="an agent's holding: its next report settles it (docs/agents.md); settle by hand only"
                " for an agent that is gone for good, with what its journal says it spent",
            )
        logged = await self.ledger.logged_consumption(budget_id, row.gen, row.sub)
        waiting = await self.waiting_for(meta, row.gen)
        least, most = bounds(in_doubt=row.balance, booked=row.booked, logged=logged, complete=not waiting)
        note = (
            "the spend log is complete: the settlement books it automatically"
            if not waiting
            else "the settlement books it once the log is complete; a center that died before writing"
            " its log leaves it to you"
        )
        return Known(row.balance, row.booked, logged, not waiting, tuple(waiting), least, most, note)

    async def settle_by_hand(
        self, budget_id: str, holder: str, consumed: int, actor: str, reason: str
    ) -> Settled:
        """Book ``consumed`` of an in-doubt holder as consumed and return the rest to main.

        For an operator who knows what a lost holder really consumed (e.g. a center that died
        before writing its log). Repeating the same call answers EXISTS with the original numbers
        (and finishes a release a crash interrupted); another amount after that is CONFLICT.
        """
        check_budget_id(budget_id)
        if not holder:
            raise InvalidInput("holder is required, e.g. doubt:sub:3@1 (see the audit)")
        if isinstance(consumed, bool) or not isinstance(consumed, int) or not 0 <= consumed <= MAX_AMOUNT:
            raise InvalidInput(f"consumed must be an integer between 0 and {MAX_AMOUNT}, got {consumed}")
        await self.registry.get(budget_id)  # NOT_FOUND for an unknown budget
        async with self._locks[budget_id]:
            booking = await self.ledger.settle_by_hand(budget_id, holder, consumed, actor, reason)
            if booking.fresh:
                IN_DOUBT_SETTLED.labels("manual", "consumed").inc(consumed)
            returned = booking.released
            for _ in range(3):
                if returned is not None:
                    break
                self.registry.forget(budget_id)
                meta = await self.registry.get(budget_id)
                if await self._release(meta, holder, booking.remaining, "manual"):
                    returned = booking.remaining
                    break
                # Released concurrently (another center finishing it), or main was rebuilt.
                row = next(r for r in await self.ledger.doubt_holders(budget_id) if r.holder == holder)
                returned = row.released
            if returned is None:
                raise Unavailable(f"{holder}: the rest could not be returned to main now; repeat the Settle")
        code = "OK" if booking.fresh else "EXISTS"
        message = "" if booking.fresh else f"{holder} was already settled with consumed {consumed}"
        return Settled(code, consumed + returned, consumed, returned, message)
