"""Tops up sub-buckets from main before they run dry, and takes back what idle ones hold.

See docs/center.md#background-fill.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import NamedTuple

from quota_center.buckets.store import BucketStore, BucketView
from quota_center.budgets.activity import Changes
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.errors import BucketLost, StaleGeneration, UnknownBudget
from quota_center.holders import MAIN, sub_holder
from quota_center.loop_failures import LoopFailures
from quota_center.metrics import FILL_SECONDS
from quota_center.recovery.rebuild import Recovery
from quota_center.refill.locks import BudgetLocks
from quota_center.transfers.protocol import Movement, Transfers
from quota_rules.allocation import BudgetState, fill_amount, fill_due_in, release_amount
from quota_rules.loops import stop_if_cancelled
from quota_rules.rates import Demand

log = logging.getLogger(__name__)

ACTOR = "filler"
# Budgets whose buckets are read in one pipeline at the start of a pass.
PAGE = 200
# A budget none of whose sub-buckets consumed for this long is tended this often only
# (its idle sub-buckets still release on time, give or take this much).
QUIET_S = 1.0
# Until the next pass a sub-bucket must last one pass period, and that pass may come a
# period late; within a pass the fills queue up on the budget's lock (sub-buckets drawn
# alike cross their watermark together), and a deduction takes a whole amount at once:
# two periods more.
LEAD_PASSES = 4
# Budgets tended at once: their fills are ledger transfers, which the group committer writes
# together (one at a time, a pass with a fill for each of hundreds of budgets in use, all of them
# just begun, took seconds).
TENDING = 16
# The active set (with every budget's mark) is read at most this often: with hundreds of budgets in
# use, reading it every pass cost a third of the filler. Between reads, what this process changed
# in it is known at once (``changes``: a quiet budget used again, one that left), what another
# process changed at the next read.
MARKS_EVERY_S = 1.0


class Next(NamedTuple):
    """When a budget is to be tended again."""

    wait_s: float
    quiet: bool = False  # also as soon as it is used again (its activity mark moves)


class Filler:
    def __init__(
        self,
        registry: Registry,
        marks: Callable[[], Awaitable[dict[str, int]]],
        buckets: BucketStore,
        transfers: Transfers,
        recovery: Recovery,
        locks: BudgetLocks,
        demand: Demand,
        *,
        interval_s: float,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
        changes: Callable[[], Changes] = lambda: Changes(set(), set()),
    ) -> None:
        self.registry = registry
        # The budgets to tend, with when each was last used: the active set (budgets/activity.py);
        # idle ones need no fill.
        self.marks = marks
        self._seen: dict[str, int] = {}  # budget -> its mark when last tended
        self._quiet: set[str] = set()  # budgets quiet when last tended
        self.buckets = buckets
        self.transfers = transfers
        self.recovery = recovery
        self.locks = locks
        self.demand = demand
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.clock = clock
        # Measured time between the starts of two passes (fills and a busy event loop
        # make it longer than the interval), smoothed.
        self.period_s = interval_s
        self.failures = LoopFailures("filler")
        self._next: dict[str, float] = {}  # when a quiet budget is tended next
        # What this process changed in the active set since the last call (emptied by it).
        self.changes = changes
        self._marks: dict[str, int] = {}
        self._marks_at = -math.inf

    @property
    def lead_ms(self) -> int:
        """A sub-bucket is topped up while it holds less than ``LEAD_PASSES`` passes of its demand."""
        return round(1000 * LEAD_PASSES * max(self.interval_s, self.period_s))

    async def run(self) -> None:
        """Tend budgets every interval; errors are logged and the next pass tries again."""
        last: float | None = None
        while True:
            started = self.clock()
            if last is not None:
                self.period_s += (started - last - self.period_s) / 8
            last = started
            try:
                await self.tend_all()
            except Exception as exc:
                self.failures.failed(exc)
            else:
                self.failures.succeeded()
            stop_if_cancelled()
            # At least a quarter interval between passes, however long a pass took: the
            # requests being served share this event loop.
            elapsed = self.clock() - started
            await asyncio.sleep(max(self.interval_s - elapsed, self.interval_s / 4))

    async def tend_all(self) -> None:
        """One pass: every budget that consumed lately, each quiet one as soon as it is used again
        (its activity mark moved), and otherwise once every ``quiet_s`` (to give back what its idle
        sub-buckets hold)."""
        now = self.clock()
        touched, left = self.changes()
        if now - self._marks_at >= MARKS_EVERY_S:
            self._marks, self._marks_at = await self._budget_marks(), now
        marks = self._marks
        for budget_id in left:
            marks.pop(budget_id, None)
        for budget_id in touched - marks.keys():
            marks[budget_id] = -1  # active since the last read: tended now, its mark read later
        # Due: its time came, or it was quiet and is used again (its activity mark moved, or this
        # process served it).
        due = [
            b
            for b, mark in marks.items()
            if self._next.get(b, 0.0) <= now
            or (b in self._quiet and (b in touched or self._seen.get(b, mark) != mark))
        ]
        slots = asyncio.Semaphore(TENDING)

        async def tend_one(budget_id: str, found: list[BucketView | None] | None) -> None:
            async with slots:
                stop_if_cancelled()
                try:
                    then = await self._tend_or_repair(budget_id, found)
                except Exception as exc:
                    # Redis or PostgreSQL down, most likely: retried each pass.
                    self.failures.failed(exc, budget_id)
                    return
            self._seen[budget_id] = marks[budget_id]
            self._next[budget_id] = now + then.wait_s
            if then.quiet:
                self._quiet.add(budget_id)
            else:
                self._quiet.discard(budget_id)
            self.failures.succeeded(budget_id)

        for start in range(0, len(due), PAGE):
            stop_if_cancelled()
            page = due[start : start + PAGE]
            read = await self._read_page(page)
            await asyncio.gather(*(tend_one(b, read.get(b)) for b in page))

    async def _read_page(self, page: list[str]) -> dict[str, list[BucketView | None]]:
        """Main and the sub-buckets of each budget of ``page``, in one pipeline (by budget: each
        one's buckets as ``tend`` reads them). Empty if the page cannot be read so (a budget that
        is not known, a bucket that cannot be parsed): each budget is then read on its own."""
        try:
            metas = [await self.registry.get(b) for b in page]
            wanted = [
                (m.budget_id, h)
                for m in metas
                for h in [MAIN, *(sub_holder(i) for i in range(m.sub_buckets))]
            ]
            read: dict[str, list[BucketView | None]] = {b: [] for b in page}
            for (budget_id, _), view in zip(wanted, await self.buckets.read_many(wanted), strict=True):
                read[budget_id].append(view)
        except Exception:
            return {}
        return read

    @property
    def quiet_s(self) -> float:
        """How often a quiet budget nobody uses is tended: often enough for idle sub-buckets to give
        their surplus back within half ``idle_s`` of its time."""
        return max(QUIET_S, self.idle_s / 2)

    async def _tend_or_repair(self, budget_id: str, found: list[BucketView | None] | None) -> Next:
        try:
            return await self.tend(budget_id, found)
        except BucketLost:
            self.demand.forget(budget_id)
            await self.recovery.rebuild(budget_id)
        except StaleGeneration:
            self.registry.forget(budget_id)
        except UnknownBudget:
            self.demand.forget(budget_id)
        return Next(0.0)  # repaired (or gone): looked at again next pass

    async def tend(self, budget_id: str, found: list[BucketView | None] | None = None) -> Next:
        """One pass over one budget: observe its sub-buckets (``found``: as a page's read had them;
        else read now), then fill or release each.

        Returns when it wants tending again: a quiet budget (no sub-bucket consumed for
        ``QUIET_S``, nothing moved) in ``quiet_s`` or as soon as it is used again; a busy one
        at half the time until a sub-bucket of it reaches its watermark (0: the next pass).
        """
        meta = await self.registry.get(budget_id)
        if meta.outside_window(datetime.now(UTC)) is not None or meta.policy.strategy == "static":
            return Next(self.quiet_s, True)  # static shares are given once, on demand, and never topped up
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        if found is None or len(found) != len(holders):
            found = list(await asyncio.gather(*(self.buckets.read(budget_id, h) for h in holders)))
        views: list[BucketView] = []
        for holder, view in zip(holders, found, strict=True):
            if view is None:
                raise BucketLost(budget_id, holder)
            views.append(view)
        if any(v.state != "active" for v in views):
            return Next(self.quiet_s, True)  # paused or closed (or a state change half mirrored): left alone
        if any(v.gen != meta.gen for v in views):
            self.registry.forget(budget_id)  # rebuilt meanwhile: the next pass sees the new generation
            return Next(0.0)
        now = self.clock()
        self.demand.see_main(budget_id, meta.gen, views[0].balance)
        subs = views[1:]
        for index, view in enumerate(subs):
            self.demand.see(
                budget_id,
                meta.gen,
                index,
                consumed=view.consumed,
                balance=view.balance,
                now=now,
                draws=view.draws,
            )
        moved = 0
        # The budget as this pass saw it, for each sub-bucket's first look (a fill decided on it
        # is decided again on fresh balances under the lock; main only shrinks meanwhile, so a
        # stale look errs towards looking again, never towards a fill missed).
        seen = self.demand.budget(budget_id, meta.sub_buckets, now)
        wait_s = self.quiet_s
        # Soonest to run dry first, so that a short main goes where it is missed first.
        for index in sorted(range(len(subs)), key=lambda i: self._runway(budget_id, i, subs[i], now)):
            if self.demand.idle_s(budget_id, index, now) >= self.idle_s:
                moved += await self._release(meta, index, now, seen)
            else:
                due_s = self._due_s(meta, index, now, seen)
                if due_s == 0:
                    moved += await self._fill(meta, index, now)
                    due_s = self._due_s(meta, index, now, seen)
                if not self.demand.measured(budget_id, index):
                    due_s = 0.0  # its rate not known yet: the next look tells it
                # Half the time left before its top-up: a draw that speeds up is still caught.
                wait_s = min(wait_s, due_s / 2)
        quiet = all(self.demand.idle_s(budget_id, i, now) >= QUIET_S for i in range(len(subs)))
        drawing = any(self.demand.rate(budget_id, i, now) > 0 for i in range(len(subs)))
        if (quiet and moved == 0) or not drawing:
            # Nothing consumed lately, or no rate shown yet: tended again as soon as it is used.
            return Next(self.quiet_s, True)
        # A busy budget is tended again when one of its sub-buckets nears its watermark, not every
        # pass: with many budgets in use, each holding many draws, most passes would find nothing
        # to do at a cost per budget (docs/center.md#background-fill).
        return Next(wait_s if wait_s >= self.period_s else 0.0)

    def _due_s(self, meta: BudgetMeta, index: int, now: float, snapshot: BudgetState) -> float:
        """Seconds until sub-bucket ``index`` is to be topped up, as last seen (0: now)."""
        holder = self.demand.holder(meta.budget_id, index, now)
        return fill_due_in(meta.policy, snapshot, holder, self.lead_ms)

    async def _fill(self, meta: BudgetMeta, index: int, now: float) -> int:
        budget_id, holder = meta.budget_id, sub_holder(index)
        started = time.perf_counter()
        async with self.locks(budget_id):
            # Decided again on fresh balances: a deduction may have been refilled meanwhile.
            main, sub = await self._balances(meta, holder)
            state = self.demand.holder(budget_id, index, now, balance=sub)
            budget = self.demand.budget(budget_id, meta.sub_buckets, now, main=main, fresh={index: sub})
            give = fill_amount(meta.policy, budget, state, self.lead_ms)
            if give <= 0:
                return 0
            reason = f"rate {state.rate:.6g}/s"
            moved = await self.transfers.move(
                Movement(budget_id, MAIN, holder, give, meta.gen, "fill", ACTOR, reason)
            )
        self.demand.moved(budget_id, index, balance=sub + moved, main=main - moved, slice_=moved)
        FILL_SECONDS.labels("fill").observe(time.perf_counter() - started)
        return moved

    async def _release(self, meta: BudgetMeta, index: int, now: float, snapshot: BudgetState) -> int:
        budget_id, holder = meta.budget_id, sub_holder(index)
        if release_amount(meta.policy, snapshot, self.demand.holder(budget_id, index, now)) <= 0:
            return 0
        started = time.perf_counter()
        async with self.locks(budget_id):
            main, sub = await self._balances(meta, holder)
            state = self.demand.holder(budget_id, index, now, balance=sub)
            budget = self.demand.budget(budget_id, meta.sub_buckets, now, main=main, fresh={index: sub})
            amount = release_amount(meta.policy, budget, state)
            if amount <= 0:
                return 0
            reason = f"idle {self.demand.idle_s(budget_id, index, now):.0f}s"
            # "upto": a deduction that slipped in since the read leaves less to take.
            moved = await self.transfers.move(
                Movement(budget_id, holder, MAIN, amount, meta.gen, "release", ACTOR, reason),
                mode="upto",
            )
        self.demand.moved(budget_id, index, balance=sub - moved, main=main + moved)
        FILL_SECONDS.labels("release").observe(time.perf_counter() - started)
        return moved

    def _runway(self, budget_id: str, index: int, view: BucketView, now: float) -> float:
        """Seconds until the sub-bucket runs dry at its observed rate (inf when idle)."""
        rate = self.demand.rate(budget_id, index, now)
        return view.balance / rate if rate > 0 else float("inf")

    async def _balances(self, meta: BudgetMeta, holder: str) -> tuple[int, int]:
        main, sub = await self.buckets.balances(meta.budget_id, [MAIN, holder])
        if main is None:
            raise BucketLost(meta.budget_id, MAIN)
        if sub is None:
            raise BucketLost(meta.budget_id, holder)
        return main, sub

    async def _budget_marks(self) -> dict[str, int]:
        marks = await self.marks()
        if len(self._next) > 2 * len(marks):  # budgets that left the active set: forgotten
            self._next = {b: t for b, t in self._next.items() if b in marks}
            self._seen = {b: m for b, m in self._seen.items() if b in marks}
            self._quiet &= set(marks)
        return marks
