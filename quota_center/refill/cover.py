"""Refill a short sub-bucket from main, merging fragments when needed; the end game's pool.

One coroutine per budget does this at a time (per process): concurrent short
requests queue on the budget's lock and find the merge done by the first one
instead of starting their own, and a refusal is decided on a state nobody else is
rearranging. Each round reads every bucket's free balance first, so a refusal is
given only when main and all sub-buckets together hold less than the request,
and costs no transfer (nor ledger row). Requests that queued behind a refusal's
check and ask more than it found get the same answer without a round of their own.

In CENTRAL mode deductions are served by the pool (docs/center.md#end-game): everything
free is merged into sub-bucket 0 once, and the other sub-buckets send new deductions there,
so each is one Lua call; this lock is taken again only when the pool runs short.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from quota_center.buckets.store import BucketStore
from quota_center.budgets.registry import BudgetMeta
from quota_center.budgets.sellout import Availability, SellOut
from quota_center.errors import BucketLost, LockBusy, StaleGeneration, Unavailable
from quota_center.holders import MAIN, is_sub_doubt, sub_holder
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import BUDGETS, MERGE_SECONDS, MERGES, POOLS_OPENED, SHARED_REFUSALS
from quota_center.refill.locks import BudgetLocks
from quota_center.transfers.protocol import Movement, Transfers
from quota_rules.allocation import refill_amount, slice_size
from quota_rules.limits import MAX_AMOUNT
from quota_rules.modes import Mode, grant_for, mode_for
from quota_rules.rates import Demand

ACTOR = "center"
# Other center processes may move budget at the same time; past this many rounds
# the state is too unsettled to decide and the caller gets UNAVAILABLE.
MAX_ROUNDS = 100
# Units seen moving between holders when a refusal is due: looked at again this many times,
# this far apart, before the caller gets UNAVAILABLE.
MOVING_WAITS = 10
MOVING_WAIT_S = 0.01

# Orders the agents holding a budget to give back up to an amount; returns what those that did
# not answer in time hold, by holder (agents/sessions.py).
Reclaim = Callable[[BudgetMeta, int], Awaitable[dict[str, int]]]
Held = Callable[[str], Awaitable[dict[str, int]]]


class Replenisher:
    def __init__(
        self,
        buckets: BucketStore,
        transfers: Transfers,
        ledger: LedgerStore,
        locks: BudgetLocks,
        *,
        demand: Demand | None = None,
        reclaim: Reclaim | None = None,
        held: Held | None = None,
        sellout: SellOut | None = None,
        settles: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = buckets
        self.transfers = transfers
        self.ledger = ledger
        self.lock = locks
        # The filler's observed rates, when it runs: on-demand refills are then sized like its
        # fills (``allocation.slice_size``); without them, the equal-share slice.
        self.demand = demand
        self.clock = clock
        # Where region agents can hold this center's budgets: asks them to give back up to the
        # amount (reclaim orders over their sessions) and returns what those that did not
        # answer in time hold, by holder.
        self.reclaim = reclaim
        # What each agent holding a budget holds (0 included), by holder; the sold-out mark it may set.
        self.held = held
        self.sellout = sellout
        # Whether the settlement gives main back what a Redis loss put in doubt by itself
        # (QUOTA_CENTER_SETTLE_RELEASE): then a refusal waits for it (UNAVAILABLE) instead.
        self.settles = settles
        self._unanswered: dict[str, dict[str, int]] = {}
        self._decided: dict[str, tuple[float, int]] = {}  # budget -> (when, what was left) of a refusal
        self._pools: set[tuple[str, int]] = set()  # (budget, generation) whose pool this process opened

    async def cover(
        self,
        meta: BudgetMeta,
        index: int,
        amount: int,
        *,
        pooled: bool = False,
        wait_until: float | None = None,
    ) -> bool:
        """Make sub-bucket ``index`` hold at least ``amount``; False if the whole budget cannot.

        False is honest: main, every sub-bucket and every agent that answered a reclaim held
        less than ``amount`` when it was decided (by this call, or by a call that decided after
        this one began waiting for the lock). When they held nothing at all, and nothing was
        moving, the budget is marked sold out (``budgets/sellout.py``).

        ``pooled``: the caller is a deduction, which the end game serves from the pool
        (sub-bucket 0, docs/center.md#end-game). In SCARCE and CENTRAL mode a deduction short at
        another sub-bucket opens the pool and gets True: asked again, its sub-bucket sends it
        there. The pool is refilled with an equal share of main (SCARCE) or everything free,
        merged into it at once (CENTRAL), so the deductions after a refill are one Lua call
        each, with no ledger row and no lock.

        ``wait_until`` (the event loop's clock): LockBusy, with nothing done, if the budget's lock
        is not free by then (a batch answers such an item UNSETTLED instead of answering late).
        """
        holder = sub_holder(index)
        if meta.policy.strategy == "static":
            return await self._cover_static(meta, holder, amount)
        reclaimed = False
        asked = time.monotonic()
        async with self._locked(meta.budget_id, wait_until):
            decided = self._decided.get(meta.budget_id)
            if decided is not None and decided[0] >= asked and decided[1] < amount:
                # A check begun after this request arrived found less than it asks: the same answer,
                # without another round (concurrent refusals share one).
                SHARED_REFUSALS.inc()
                return False
            self._unanswered.pop(meta.budget_id, None)
            refusing = False  # a round found too little: the next one reads the supply version first
            seen: Availability | None = None
            waited = 0
            for _ in range(MAX_ROUNDS):
                looked = time.monotonic()
                if refusing and self.sellout is not None:
                    seen = await self.sellout.read(meta.budget_id)
                # The mode counts what agents hold, as the agents' grants do: a budget whose
                # agents hold most of what is left is not in the center's end game yet.
                balances, agents, moving = await self._look(meta)
                sub = balances[holder]
                if sub >= amount:
                    return True
                free = sum(balances.values())
                mode = mode_for(meta.policy, free + sum(agents.values()))
                BUDGETS.observe_mode(meta.budget_id, mode.value)
                if free < amount:
                    if self.reclaim is not None and not reclaimed:
                        # Agents may hold the rest: order it back to main, then decide again.
                        reclaimed = refusing = True
                        unanswered = await self.reclaim(meta, amount - free)
                        if unanswered:
                            self._unanswered[meta.budget_id] = unanswered
                        continue
                    if self.sellout is not None and seen is None:
                        refusing = True  # decided on balances read after the supply version
                        continue
                    if moving is None:
                        moving = await self._in_flight(meta)
                    if moving and free + moving >= amount:
                        # Not an honest refusal: units are between holders. Most land within
                        # milliseconds (another process's refill or release): look again. One of a
                        # center that died lands or goes back within the sweep: UNAVAILABLE.
                        if waited < MOVING_WAITS:
                            waited += 1
                            await asyncio.sleep(MOVING_WAIT_S)
                            continue
                        raise Unavailable(
                            f"budget {meta.budget_id}: {moving} units are moving between holders and"
                            f" {free} are free; retry shortly"
                        )
                    settling = await self._settling(meta)
                    if settling and free + moving + settling >= amount:
                        # Nor while what a Redis loss took from the sub-buckets (in the end game, the
                        # pool: most of what is left) is being settled from the spend log.
                        raise Unavailable(
                            f"budget {meta.budget_id}: {settling} units are in doubt after a Redis loss and"
                            f" being settled, {free} are free; retry shortly"
                        )
                    await self._refused(meta, seen, free + moving, sum(agents.values()), looked)
                    return False
                pool = pooled and mode is not Mode.NORMAL
                if pool and index != 0:
                    await self.open_pool(meta)
                    return True  # asked again, the sub-bucket sends the deduction to the pool
                if pool and mode is Mode.CENTRAL:
                    # Everything free into the pool at once: one ledger row, then Lua calls only.
                    if free - balances[MAIN] - sub > 0:
                        await self._merge(meta, skip=holder)
                    everything = Movement(
                        meta.budget_id, MAIN, holder, MAX_AMOUNT, meta.gen, "refill", ACTOR, "end game"
                    )
                    await self.transfers.move(everything, mode="upto")
                    continue
                need = amount - sub
                others = free - balances[MAIN] - sub
                if others and (balances[MAIN] < need or mode is Mode.CENTRAL):
                    # Fragments elsewhere: merge them into main, then grant from there.
                    await self._merge(meta, skip=holder)
                    continue
                if pool:
                    # SCARCE: the pool takes an equal share of main with the agents drawing on it.
                    give = min(balances[MAIN], max(need, balances[MAIN] // (1 + len(agents))))
                else:
                    slice_ = on_demand_slice(meta, index, balances, need, self.demand, self.clock())
                    give = grant_for(mode, meta.policy, need=need, main=balances[MAIN], slice_=slice_)
                refill = Movement(meta.budget_id, MAIN, holder, give, meta.gen, "refill", ACTOR, mode.value)
                if give and await self.transfers.move(refill):
                    return True
                # Main changed between the read and the take (another process): look again.
        raise Unavailable(f"budget {meta.budget_id}: no stable state after {MAX_ROUNDS} refill rounds")

    @contextlib.asynccontextmanager
    async def _locked(self, budget_id: str, wait_until: float | None) -> AsyncIterator[None]:
        lock = self.lock(budget_id)
        if wait_until is None:
            async with lock:
                yield
            return
        try:
            async with asyncio.timeout_at(wait_until):
                await lock.acquire()
        except TimeoutError:
            raise LockBusy(budget_id) from None
        try:
            yield
        finally:
            lock.release()

    async def open_pool(self, meta: BudgetMeta) -> None:
        """Mark every sub-bucket but 0 to send new deductions to sub-bucket 0, the pool."""
        if (meta.budget_id, meta.gen) in self._pools:
            return
        marks = [self.buckets.open_pool(meta.budget_id, i, meta.gen) for i in range(1, meta.sub_buckets)]
        for i, r in enumerate(await asyncio.gather(*marks), start=1):
            if r.status == "LOST":
                raise BucketLost(meta.budget_id, sub_holder(i))
            if r.status == "STALE":
                raise StaleGeneration(meta.budget_id)
        self._pools.add((meta.budget_id, meta.gen))
        POOLS_OPENED.inc()

    async def free_sub_buckets(self, meta: BudgetMeta) -> int:
        """Drain the sub-buckets into main for agents' grants (the caller holds the budget's lock);
        the pool keeps its balance once this process opened it. Returns the amount moved."""
        pool = sub_holder(0) if (meta.budget_id, meta.gen) in self._pools else ""
        return await self._merge(meta, skip=pool)

    async def _refused(
        self, meta: BudgetMeta, seen: Availability | None, free: int, held: int, looked: float
    ) -> None:
        """Note a refusal's check (begun at ``looked``) for the requests waiting behind it; mark the
        budget sold out when nothing at all was left (main, sub-buckets and agents' ``held``,
        nothing moving)."""
        self._decided[meta.budget_id] = (looked, free + held)
        if seen is not None and self.sellout is not None and free == 0 and held == 0:
            await self.sellout.mark(seen)

    async def confirm_sold_out(self, meta: BudgetMeta) -> None:
        """Check a sold-out mark again on fresh reads: marked anew if nothing is left, else dropped."""
        if self.sellout is None or meta.policy.strategy == "static":
            return
        async with self.lock(meta.budget_id):
            seen = await self.sellout.read(meta.budget_id)
            if not seen.due_for_check:
                return  # confirmed (or dropped) meanwhile
            balances, agents, moving = await self._look(meta)
            if moving is None:
                moving = await self._in_flight(meta)
            if sum(balances.values()) + moving + sum(agents.values()) == 0:
                await self.sellout.mark(seen)
            else:
                await self.sellout.changed(meta.budget_id)

    async def _cover_static(self, meta: BudgetMeta, holder: str, amount: int) -> bool:
        """The static strategy: a holder gets one equal share of the total, once; no refill, no merge.

        False means this holder's share cannot cover ``amount``, whatever other holders have left:
        the stranding and false refusals that strategy accepts (see README, "Strategies").
        """
        if await self.take_static_share(meta, holder):
            balance = await self.buckets.balance(meta.budget_id, holder)
            return balance is not None and balance >= amount
        return False

    async def take_static_share(self, meta: BudgetMeta, holder: str) -> int:
        """Move ``holder``'s one share (total // sub_buckets, or what main has left) to it, once.

        The claim is a field set with HSETNX on the holder's own hash, so however many center
        processes ask at once, one moves the share; the others get 0.
        """
        if not await self.buckets.claim_static_share(meta.budget_id, holder):
            return 0
        async with self.lock(meta.budget_id):
            main = await self.buckets.balance(meta.budget_id, MAIN) or 0
            total = await self._total(meta)
            share = min(main, total // max(1, meta.policy.sub_buckets))
            if share <= 0:
                return 0
            move = Movement(meta.budget_id, MAIN, holder, share, meta.gen, "refill", ACTOR, "static")
            return await self.transfers.move(move)

    async def _total(self, meta: BudgetMeta) -> int:
        row = await self.ledger.get_budget(meta.budget_id)
        return 0 if row is None else row.total

    def unanswered(self, budget_id: str) -> dict[str, int]:
        """What holders that did not answer the last reclaim of ``budget_id`` hold, by holder."""
        return dict(self._unanswered.get(budget_id, {}))

    async def _merge(self, meta: BudgetMeta, skip: str) -> int:
        """Drain every other sub-bucket's balance back to main; return the amount moved.

        The reclaims run concurrently: their ledger rows share a group commit, so a merge costs
        about one round of transfers, not one per sub-bucket.
        """
        started = time.perf_counter()
        moves = [
            self.transfers.move(
                Movement(meta.budget_id, holder, MAIN, MAX_AMOUNT, meta.gen, "reclaim", ACTOR, "merge"),
                mode="upto",
            )
            for holder in (sub_holder(i) for i in range(meta.sub_buckets))
            if holder != skip
        ]
        total = sum(await asyncio.gather(*moves))
        MERGES.inc()
        MERGE_SECONDS.observe(time.perf_counter() - started)
        return total

    async def _settling(self, meta: BudgetMeta) -> int:
        """Units a Redis loss put in doubt from the sub-buckets, not released yet: the settlement
        (recovery/settlement.py) books what the spend log says was spent and gives main the rest
        (0 when it releases nothing by itself: an operator settles them)."""
        if not self.settles:
            return 0
        rows = await self.ledger.doubt_holders(meta.budget_id)
        return sum(r.balance for r in rows if r.released is None and r.balance > 0 and is_sub_doubt(r.holder))

    async def _in_flight(self, meta: BudgetMeta) -> int:
        """Units taken from main or a sub-bucket by a transfer of this generation not cleared yet,
        units on their way into main (a settlement's release, a top-up) not credited yet, and
        agents' releases to main not credited yet."""
        moving = 0
        for holder in [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]:
            view = await self.buckets.read(meta.budget_id, holder)
            if view is not None:
                moving += sum(p.amount for p in view.pending if p.gen == meta.gen)
        if self.held is not None:
            for holder in await self.buckets.agent_holders(meta.budget_id):
                view = await self.buckets.read(meta.budget_id, holder)
                if view is not None:
                    moving += sum(p.amount for p in view.pending if p.gen == meta.gen and p.target == MAIN)
        return moving

    async def _look(self, meta: BudgetMeta) -> tuple[dict[str, int], dict[str, int], int | None]:
        """Main's and the sub-buckets' balances, the agents' holdings, and what is moving between
        them. On one Redis server all in one step (snapshot.lua), so that a refusal is honest while
        another center process moves budget between these buckets; on a cluster read one by one
        (moving: None, read when a refusal needs it)."""
        if not self.buckets.one_server:
            balances, agents = await asyncio.gather(self._balances(meta), self._agents(meta))
            return balances, agents, None
        subs = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        agent_holders = [] if self.held is None else await self.buckets.agent_holders(meta.budget_id)
        # Moving: transfers out of (or into) main and the sub-buckets, and agents' releases not
        # credited to main yet (an agent of another process answering a relayed reclaim, or one
        # giving back on its own): those units are free in a moment, not gone.
        values, moving = await self.buckets.snapshot(
            meta.budget_id, subs + agent_holders, meta.gen, moving_of=len(subs)
        )
        for holder, value in zip(subs, values, strict=False):
            if value is None:
                raise BucketLost(meta.budget_id, holder)
        balances = {h: v or 0 for h, v in zip(subs, values, strict=False)}
        agents = {h: v or 0 for h, v in zip(agent_holders, values[len(subs) :], strict=True)}
        return balances, agents, moving

    async def _agents(self, meta: BudgetMeta) -> dict[str, int]:
        return {} if self.held is None else await self.held(meta.budget_id)

    async def _balances(self, meta: BudgetMeta) -> dict[str, int]:
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        values = await self.buckets.balances(meta.budget_id, holders)
        for holder, value in zip(holders, values, strict=True):
            if value is None:
                raise BucketLost(meta.budget_id, holder)
        return {h: v for h, v in zip(holders, values, strict=True) if v is not None}


def on_demand_slice(
    meta: BudgetMeta, index: int, balances: dict[str, int], need: int, demand: Demand | None, now: float
) -> int:
    """The NORMAL-mode slice for sub-bucket ``index`` short by ``need`` (``grant_for`` applies the mode).

    Sized like the filler's fills (``allocation.slice_size``) from the observed rates when there
    are any; without them (no filler), the equal-share slice.
    """
    main = balances[MAIN]
    if demand is None:
        return refill_amount(need=need, main_balance=main, policy=meta.policy)
    subs = {i: balances[sub_holder(i)] for i in range(meta.sub_buckets)}
    budget = demand.budget(meta.budget_id, meta.sub_buckets, now, main=main, fresh=subs)
    holder = demand.holder(meta.budget_id, index, now, balance=subs[index], need=need)
    if holder.draw == 0 and holder.rate == 0:
        # Not looked at since it began to draw: the request it is short of is one of its draws
        # (else a slice of min_slice, and a refill per draw until the filler looks).
        holder = replace(holder, draw=need)
    return slice_size(meta.policy, budget, holder)
