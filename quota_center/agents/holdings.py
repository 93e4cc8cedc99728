"""Region agents' holdings at the center: usage reports, grants, releases, leases (docs/agents.md).

An agent's holding of a budget is a holder ``agent:<id>`` like a sub-bucket: budget reaches it
only by a ledgered grant from main and leaves it by a ledgered release to main, or into an
in-doubt holder when its lease runs out. Reports are cumulative and applied by one script, so
repeats and reorderings change nothing; every answer is the holding read in that script.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from quota_center.buckets.agents import AgentStore, Reported
from quota_center.buckets.store import BucketStore, parse_pending
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.budgets.sellout import Availability, SellOut
from quota_center.errors import BucketLost, StaleGeneration
from quota_center.holders import MAIN, agent_doubt_prefix, agent_holder, lost_gen, sub_holder
from quota_center.ledger.models import LedgerEntry, RecordOutcome
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import (
    AGENT_GRANTS,
    AGENT_LEASES_LOST,
    AGENT_REPORTS_REFUSED,
    AGENT_UNBACKED_RETURNS,
    IN_DOUBT_SETTLED,
)
from quota_center.recovery.rebuild import Recovery
from quota_center.refill.cover import Replenisher
from quota_center.refill.locks import BudgetLocks
from quota_center.transfers.protocol import Movement, Transfers, now_ms
from quota_rules import messages
from quota_rules.allocation import BudgetState, HolderState, slice_size
from quota_rules.limits import InvalidInput
from quota_rules.modes import Mode, mode_for
from quota_rules.rates import Demand
from quota_rules.usage import Usage

log = logging.getLogger(__name__)

ACTOR = "center"
# An agent's observed rate counts towards fair shares for this long after it was reported.
RATE_FRESH_S = 30.0
MODE_FRESH_S = 0.2


class AgentReportRefused(InvalidInput):
    """A usage report that cannot be true: counters that went back, or more spent than held."""


@dataclass(frozen=True, slots=True)
class HoldingView:
    """What the center tells an agent about its holding of one budget."""

    budget_id: str
    version: int
    balance: int
    applied: Usage
    lease_ms: int
    mode: Mode
    state: str  # active, paused, closed
    lost: bool = False
    # The budget's sold-out mark as last read, and its version (budgets/sellout.py).
    sold_out: bool = False
    availability: int = 0


@dataclass(frozen=True, slots=True)
class GrantResult:
    code: str  # OK, BUDGET_PAUSED, BUDGET_CLOSED, BUDGET_OUTSIDE_WINDOW
    amount: int
    transfer_id: str
    holding: HoldingView
    message: str = ""


class AgentHoldings:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        store: AgentStore,
        transfers: Transfers,
        replenisher: Replenisher,
        locks: BudgetLocks,
        ledger: LedgerStore,
        *,
        lease_ms: int,
        skew_ms: int,
        demand: Demand | None = None,
        clock: Callable[[], int] = now_ms,
        recovery: Recovery | None = None,
        sellout: SellOut | None = None,
    ) -> None:
        self.registry = registry
        self.buckets = buckets
        self.store = store
        self.transfers = transfers
        self.replenisher = replenisher
        self.locks = locks
        self.ledger = ledger
        self.lease_ms = lease_ms
        self.skew_ms = skew_ms
        # A holding missing from Redis may mean Redis lost the budget: rebuilt before it is opened.
        self.recovery = recovery
        self.demand = demand
        self.clock = clock
        self._rates: dict[tuple[str, str], tuple[float, float]] = {}  # (budget, agent) -> (rate, when)
        self._last_slice: dict[tuple[str, str], int] = {}
        self._modes: dict[str, tuple[Mode, str, Availability | None, float]] = {}
        # Told when agents give budget back; its marks are told to every agent with its holding.
        self.sellout = sellout
        self._confirming: dict[str, asyncio.Task[None]] = {}  # budget -> its sold-out mark's check

    async def report(
        self, budget_id: str, agent_id: str, usage: Usage, *, renew: bool, available: int | None = None
    ) -> HoldingView:
        """Apply a usage report (and renew the lease if ``renew``); return the holding after it.

        ``available`` is what the agent may still spend by its own account: a holding that a Redis
        loss took is carried over with it when the report opens the new one (``_carry_over``).
        """
        meta = await self.registry.get(budget_id)
        for _ in range(4):
            now = self.clock()
            lease_ms = lease_for(meta, now, self.lease_ms) if renew else 0
            tid = f"t:{budget_id}:rel:{agent_id}@{meta.gen}:{usage.released}"
            r = await self.store.report(
                budget_id,
                agent_id,
                meta.gen,
                usage,
                lease_until_ms=now + lease_ms if lease_ms else 0,
                transfer_id=tid,
                now_ms=now,
            )
            if r.status in ("OK", "OPENED"):
                if r.status == "OPENED":
                    # A missing holding may mean Redis lost the budget: rebuild it if so. Either
                    # way the holding must be of the budget's current generation, never of one a
                    # rebuild (here or elsewhere) just replaced: grants to it would go astray.
                    rebuilt = self.recovery is not None and await self.recovery.rebuild(budget_id)
                    self.registry.forget(budget_id)
                    current = await self.registry.get(budget_id)
                    if rebuilt or current.gen != meta.gen:
                        meta = current
                        await self.store.drop(budget_id, agent_id, meta.gen)
                        continue
                    await self.store.register(budget_id, agent_id)
                    if available is not None:
                        r = await self._carry_over(meta, agent_id, usage, available, r)
                if r.unbacked > 0:
                    AGENT_UNBACKED_RETURNS.inc(r.unbacked)
                    log.warning(
                        "agent %s: %d units of returns on budget %s exceed what its holding consumed:"
                        " applied to its counters, not credited (kept consumed)",
                        agent_id,
                        r.unbacked,
                        budget_id,
                    )
                if r.released > 0:
                    await self._release(meta, agent_id, tid, r.released)
                    await self._changed(budget_id)
                return await self._view(meta, r, lease_ms)
            if r.status == "LOST":
                await self._settle_lost(meta, agent_id)
                continue
            if r.status == "STALE":
                if r.version < meta.gen:
                    # A holding of a generation a rebuild replaced: the ledger already counts what
                    # it held as in doubt, and the rebuild dropped its transfers. Start afresh.
                    await self.store.drop(budget_id, agent_id, meta.gen)
                else:
                    self.registry.forget(budget_id)
                    meta = await self.registry.get(budget_id)
                continue
            AGENT_REPORTS_REFUSED.labels(r.status.lower()).inc()
            raise AgentReportRefused(_refusal(budget_id, agent_id, usage, r))
        raise StaleGeneration(budget_id)

    async def grant(
        self,
        budget_id: str,
        agent_id: str,
        usage: Usage,
        *,
        need: int,
        rate: float,
        available: int | None = None,
    ) -> GrantResult:
        """Report, renew, and move a slice from main to the agent (a background refill: no merge)."""
        if need < 0 or rate < 0:
            raise InvalidInput("needed and observed_rate must not be negative")
        view = await self.report(budget_id, agent_id, usage, renew=True, available=available)
        meta = await self.registry.get(budget_id)
        now_s = time.monotonic()
        self._rates[(budget_id, agent_id)] = (float(rate), now_s)
        refusal = _refusal_for_state(meta, view.state, self.clock())
        if refusal is not None:
            return GrantResult(refusal[0], 0, "", view, refusal[1])
        if view.mode is Mode.CENTRAL:
            return GrantResult("OK", 0, "", view, "central mode: forward every deduction")
        holder = agent_holder(agent_id)
        moved, tid = 0, ""
        if meta.policy.strategy == "static":
            moved = await self.replenisher.take_static_share(meta, holder)
            after = await self.report(
                budget_id, agent_id, view.applied, renew=False, available=_held_after(view, moved, available)
            )
            lease = lease_for(meta, self.clock(), self.lease_ms)
            return GrantResult(
                "OK", moved, "", _with_lease(after, lease), "" if moved else "static: one share only"
            )
        async with self.locks(budget_id):
            main = await self.buckets.balance(budget_id, MAIN) or 0
            agents = await self.store.agents(budget_id)
            budget = BudgetState(
                main=main,
                remaining=await self._free(meta),
                holders=meta.sub_buckets + max(1, len(agents)),
                total_rate=self._total_rate(budget_id, meta.sub_buckets, now_s),
            )
            holder_state = HolderState(
                balance=view.balance,
                rate=float(rate),
                need=need,
                last_slice=self._last_slice.get((budget_id, agent_id), 0),
            )
            wanted = slice_size(meta.policy, budget, holder_state)
            # Main ran dry while the center's sub-buckets sit on what is left: bring it back to
            # main (the end game serves the center's deductions from its pool).
            dry = view.mode is Mode.SCARCE and wanted < max(need, 1) and budget.remaining > main
            if dry and await self.replenisher.free_sub_buckets(meta):
                main = await self.buckets.balance(budget_id, MAIN) or 0
                wanted = slice_size(meta.policy, replace(budget, main=main), holder_state)
            if wanted > 0:
                tid = f"t:{budget_id}:grant:{agent_id}:{uuid.uuid4().hex}"
                try:
                    moved = await self.transfers.move(
                        Movement(budget_id, MAIN, holder, wanted, meta.gen, "grant", ACTOR, view.mode.value),
                        transfer_id=tid,
                    )
                except BucketLost as exc:
                    if exc.holder == holder:  # committed, but the credit found no holding
                        await self._undelivered(meta, agent_id, tid, wanted)
                    raise
        if moved:
            self._last_slice[(budget_id, agent_id)] = moved
            AGENT_GRANTS.inc()
        after = await self.report(
            budget_id, agent_id, view.applied, renew=False, available=_held_after(view, moved, available)
        )
        return GrantResult(
            "OK",
            moved,
            tid if moved else "",
            _with_lease(after, lease_for(meta, self.clock(), self.lease_ms)),
            "" if moved else "nothing to grant",
        )

    async def expire_due(self, budget_id: str) -> int:
        """Move the balance of every agent whose lease ran out into doubt; return how many."""
        meta = await self.registry.get(budget_id)
        lost = 0
        for agent_id in await self.store.agents(budget_id):
            e = await self.store.expire(
                budget_id, agent_id, meta.gen, now_ms=self.clock(), skew_ms=self.skew_ms
            )
            if e.status != "OK":
                continue
            lost += 1
            AGENT_LEASES_LOST.inc()
            log.warning(
                "agent %s: lease ran out on budget %s; %d units in doubt", agent_id, budget_id, e.amount
            )
            if e.amount > 0:
                await self.transfers.complete(
                    Movement(
                        budget_id,
                        agent_holder(agent_id),
                        e.holder,
                        e.amount,
                        meta.gen,
                        "lease_lost",
                        ACTOR,
                        "lease ran out",
                    ),
                    e.transfer_id,
                    e.amount,
                )
        return lost

    async def _release(self, meta: BudgetMeta, agent_id: str, tid: str, amount: int) -> None:
        m = Movement(
            meta.budget_id,
            agent_holder(agent_id),
            MAIN,
            amount,
            meta.gen,
            "release",
            ACTOR,
            "agent",
        )
        await self.transfers.complete(m, tid, amount)

    async def _carry_over(
        self, meta: BudgetMeta, agent_id: str, usage: Usage, available: int, opened: Reported
    ) -> Reported:
        """Carry the holdings a Redis loss took (``doubt:agent:<id>@<gen>#0``) into the one the
        report just opened: what the agent still has, by its own account, stays its balance and
        reservations; the rest of what it held was spent, and is booked as consumed.

        Only at the opening: then the holding's baseline is this very report, which ``available``
        and ``usage.reserved`` describe. Never more than was in doubt is carried, so an agent that
        claims too much gets no more than it held (docs/agents.md, "A Redis loss").
        """
        prefix = agent_doubt_prefix(agent_id, 0).rpartition("@")[0] + "@"
        rows = [
            row
            for row in await self.ledger.doubt_holders(meta.budget_id)
            if row.holder.startswith(prefix)
            and row.holder.endswith("#0")
            and row.balance > 0
            and row.released is None
            and lost_gen(row.holder) < meta.gen
        ]
        if not rows:
            return opened
        holder = agent_holder(agent_id)
        free_left, reserved_left = max(available, 0), max(usage.reserved, 0)
        carried = opened
        for row in sorted(rows, key=lambda r: lost_gen(r.holder), reverse=True):  # newest first
            reserved = min(reserved_left, row.balance)
            free = min(free_left, row.balance - reserved)
            consumed = row.balance - reserved - free
            outcome = await self.ledger.record(
                LedgerEntry(
                    meta.budget_id,
                    f"t:{meta.budget_id}:carry:{row.holder}",
                    "lease_settle",
                    row.holder,
                    holder,
                    row.balance,
                    ACTOR,
                    f"carried over after a Redis loss: {free + reserved} still held, {consumed} consumed",
                    meta.gen,
                )
            )
            if outcome is RecordOutcome.STALE:
                raise StaleGeneration(meta.budget_id)
            status, version, balance = await self.store.carry(
                meta.budget_id,
                agent_id,
                meta.gen,
                row.holder,
                free=free,
                reserved=reserved,
                consumed=consumed,
            )
            if status == "STALE":
                raise StaleGeneration(meta.budget_id)
            if status == "OK":
                free_left -= free
                reserved_left -= reserved
                IN_DOUBT_SETTLED.labels("agent_report", "consumed").inc(consumed)
                log.info(
                    "agent %s: carried %s of budget %s over a Redis loss: %d kept, %d consumed",
                    agent_id,
                    row.holder,
                    meta.budget_id,
                    free + reserved,
                    consumed,
                )
            carried = Reported("OK", version, balance, opened.applied, 0, 0)
        return carried

    async def _settle_lost(self, meta: BudgetMeta, agent_id: str) -> None:
        """The agent reported after its lease ran out: give the holding back its in-doubt amount.

        The agent stopped spending at its own deadline, before the center took the balance, so
        the report that follows is final: applied as usual, it books what the agent spent.
        """
        fields = await self.store.fields(meta.budget_id, agent_id)
        doubt, amount = fields.get("lost_holder", ""), int(fields.get("lost_amount", "0"))
        holder = agent_holder(agent_id)
        lose_tid = f"t:{meta.budget_id}:lose:{agent_id}@{meta.gen}#{fields.get('losses', '0')}"
        record = await self.store.pending(meta.budget_id, agent_id, lose_tid)
        if record is not None:
            # The move into doubt is not finished: finish or undo it by the ledger first.
            resolved = await self.transfers.resolve(
                meta.budget_id, parse_pending(holder, lose_tid, record), ACTOR
            )
            if resolved == "aborted":
                amount = 0  # the take was undone: the balance is back already
        back = f"t:{meta.budget_id}:back:{doubt or holder}"
        if amount > 0:
            outcome = await self.ledger.record(
                LedgerEntry(
                    meta.budget_id,
                    back,
                    "lease_settle",
                    doubt,
                    holder,
                    amount,
                    ACTOR,
                    "agent reported",
                    meta.gen,
                )
            )
            if outcome is RecordOutcome.STALE:
                raise StaleGeneration(meta.budget_id)
        await self.store.restore(meta.budget_id, agent_id, back, amount, meta.gen)
        if amount > 0:
            await self._changed(meta.budget_id)

    async def _undelivered(self, meta: BudgetMeta, agent_id: str, tid: str, amount: int) -> None:
        """A grant the ledger committed whose credit found the agent's holding gone from Redis (a
        Redis loss between the take and the credit): the agent never had it, so it goes back to
        main, ledger first (then main in Redis, unless Redis lost main too: the rebuild counts it).

        Left in the ledger, the rebuild would put it in the agent's in-doubt holding, and the
        agent's next report, which cannot count what it never received, would book it as spent.
        If the budget was rebuilt first (STALE), that is what happens: it is counted as spent,
        never issued twice.
        """
        back = f"{tid}:undelivered"
        outcome = await self.ledger.record(
            LedgerEntry(
                meta.budget_id,
                back,
                "release",
                agent_holder(agent_id),
                MAIN,
                amount,
                ACTOR,
                "grant not credited: the agent's holding was missing from Redis",
                meta.gen,
            )
        )
        if outcome in (RecordOutcome.COMMITTED, RecordOutcome.ALREADY_COMMITTED):
            await self.buckets.credit(meta.budget_id, MAIN, back, amount, meta.gen)
            log.warning(
                "agent %s: grant %s of %d on budget %s was not credited (holding missing from Redis):"
                " returned to main",
                agent_id,
                tid,
                amount,
                meta.budget_id,
            )
        else:
            log.warning(
                "agent %s: grant %s of %d on budget %s was not credited and the budget was rebuilt"
                " first: counted as spent",
                agent_id,
                tid,
                amount,
                meta.budget_id,
            )

    async def _changed(self, budget_id: str) -> None:
        """Budget came back (to main or to an agent's holding): a sold-out budget may serve again."""
        if self.sellout is not None:
            await self.sellout.changed(budget_id)

    async def _view(self, meta: BudgetMeta, r: Reported, lease_ms: int) -> HoldingView:
        mode, state, availability = await self._mode_and_state(meta)
        # Versions restart with a holding a rebuild replaced: the generation keeps them growing.
        version = (meta.gen << 32) + r.version
        sold_out, seen = (False, 0) if availability is None else (availability.sold_out, availability.version)
        return HoldingView(
            meta.budget_id, version, r.balance, r.applied, lease_ms, mode, state, False, sold_out, seen
        )

    async def _mode_and_state(self, meta: BudgetMeta) -> tuple[Mode, str, Availability | None]:
        """The budget's mode, state and sold-out mark, read at most every MODE_FRESH_S per budget.

        Every heartbeat of every agent answers with them; reading every holder's balance each
        time would cost agents² reads a heartbeat. A mode a moment old only sizes what agents
        ask for next; the center decides every grant and refusal on fresh reads. A sold-out
        mark a moment old is told with its version, which agents compare with what the center
        pushed them since (they keep the newest). A mark near its end is checked again here.
        """
        now = time.monotonic()
        cached = self._modes.get(meta.budget_id)
        if cached is not None and now - cached[3] < MODE_FRESH_S:
            return cached[0], cached[1], cached[2]
        raw = await self.buckets.budget_state(meta.budget_id)
        mode, state = mode_for(meta.policy, await self._free(meta)), raw or "active"
        availability = None
        if self.sellout is not None and meta.policy.strategy != "static":
            availability = await self.sellout.read(meta.budget_id)
            if availability.due_for_check and meta.budget_id not in self._confirming:
                self._confirm(meta)
        self._modes[meta.budget_id] = (mode, state, availability, now)
        return mode, state, availability

    def _confirm(self, meta: BudgetMeta) -> None:
        """Check a budget's sold-out mark again in the background (one check per budget at a time)."""

        async def check() -> None:
            try:
                await self.replenisher.confirm_sold_out(meta)
            except Exception:
                log.warning("budget %s: checking its sold-out mark failed", meta.budget_id, exc_info=True)
            finally:
                self._confirming.pop(meta.budget_id, None)

        self._confirming[meta.budget_id] = asyncio.get_running_loop().create_task(check())

    async def _free(self, meta: BudgetMeta) -> int:
        """Main plus every holder's balance: what the mode is decided on."""
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        holders += [agent_holder(a) for a in await self.store.agents(meta.budget_id)]
        return sum(b or 0 for b in await self.buckets.balances(meta.budget_id, holders))

    def _total_rate(self, budget_id: str, sub_buckets: int, now_s: float) -> float:
        agents = sum(
            rate
            for (b, _), (rate, when) in self._rates.items()
            if b == budget_id and now_s - when < RATE_FRESH_S
        )
        subs = (
            0.0 if self.demand is None else self.demand.total_rate(budget_id, sub_buckets, time.monotonic())
        )
        return agents + subs


def lease_for(meta: BudgetMeta, now_ms: int, lease_ms: int) -> int:
    """The lease to give now: the budget's ``policy.lease_ms`` if it set one, else ``lease_ms``
    (the center's QUOTA_CENTER_AGENT_LEASE_MS), cut at the end of the budget's validity window.

    The agent spends only within its lease, so a lease that ends with the window keeps it from
    serving after the window closed (past it, the center refuses what is forwarded). 0: none.
    """
    lease_ms = meta.policy.lease_ms or lease_ms
    if meta.valid_until is None:
        return lease_ms
    left = int(meta.valid_until.timestamp() * 1000) - now_ms
    return max(0, min(lease_ms, left))


def _held_after(view: HoldingView, moved: int, available: int | None) -> int | None:
    """What the agent may spend right after a grant, at ``view.applied``: its holding as read
    before the grant plus the slice moved (None for an agent that does not say what it has).

    The grant's answer reads the holding again. Should a Redis loss take it between the move and
    that read, the read opens the new holding and carries the lost one over with this number, as
    the agent's own next report would; without it the new holding would start empty at a
    baseline the agent's counters have passed, and every report after it would be refused.
    """
    return None if available is None else max(0, view.balance) + moved


def _with_lease(view: HoldingView, lease_ms: int) -> HoldingView:
    return replace(view, lease_ms=lease_ms)


def _refusal(budget_id: str, agent_id: str, usage: Usage, r: Reported) -> str:
    if r.status == "OVERSPENT":
        return (
            f"agent {agent_id} reports spending {r.released} more on budget {budget_id}"
            f" than its holding of {r.balance}: report refused"
        )
    return (
        f"agent {agent_id}: usage of budget {budget_id} went backwards ({usage} after {r.applied}): refused"
    )


def _refusal_for_state(meta: BudgetMeta, state: str, now: int) -> tuple[str, str] | None:
    if state == "paused":
        return "BUDGET_PAUSED", messages.PAUSED.format(b=meta.budget_id)
    if state == "closed":
        return "BUDGET_CLOSED", messages.CLOSED.format(b=meta.budget_id)
    reason = meta.outside_window(datetime.fromtimestamp(now / 1000, UTC))
    if reason is not None:
        return "BUDGET_OUTSIDE_WINDOW", reason
    return None
