"""Conservation check of a budget: Redis state against the PostgreSQL ledger.

Identity (promise 2): total = main + held + in flight + reserved + in doubt + consumed.
Each live holder's Redis state must also equal what the ledger granted it, net.
Consumed is what the live sub-buckets consumed plus the ledger's 'consumed' holder (lost
sub-buckets settled from the spend log or by hand); in doubt is listed per holder, e.g.
'doubt:sub:3@1' for what sub-bucket 3 held when Redis lost generation 1.
``reconcile`` is the pure decision; ``Auditor`` gathers its inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from quota_center.buckets.store import BucketStore, BucketView
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.holders import MAIN, agent_of, ledger_only, sub_holder
from quota_center.ledger.models import BudgetRow
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import BUDGETS

EXTERNAL = "external"
# Snapshots tried before a budget whose holders keep moving budget is reported as unsettled.
SNAPSHOT_TRIES = 8
CONSUMED = "consumed"


@dataclass(frozen=True, slots=True)
class HolderAudit:
    holder: str
    observed: int
    ledgered: int
    balance: int
    consumed: int
    in_doubt: int = 0
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class AuditReport:
    budget_id: str
    total: int
    main: int
    held: int
    in_flight: int
    reserved: int
    in_doubt: int
    consumed: int
    holders: tuple[HolderAudit, ...]
    mismatches: tuple[str, ...] = field(default=())
    # Holders that kept moving budget to or from others while read (every try of Auditor.audit):
    # the numbers are from different instants, and mismatches are not looked for.
    unsettled: tuple[str, ...] = field(default=())

    @property
    def balanced(self) -> bool:
        return not self.mismatches and not self.unsettled

    @property
    def available(self) -> int:
        return self.total - self.consumed - self.reserved - self.in_doubt

    def identity(self) -> str:
        return (
            f"total {self.total} = main {self.main} + held {self.held} + in flight {self.in_flight}"
            f" + reserved {self.reserved} + in doubt {self.in_doubt} + consumed {self.consumed}"
        )


def reconcile(
    *,
    budget_id: str,
    total: int,
    gen: int,
    views: Mapping[str, BucketView | None],
    ledger: Mapping[tuple[str, int], int],
    committed: Iterable[str],
    credited: Iterable[str],
) -> AuditReport:
    """Compare Redis bucket views with ledger balances per (holder, generation).

    A pending transfer not (yet) in the ledger still belongs to its source; one in
    the ledger but not yet credited belongs to its target; one committed and
    credited is finished but for clearing its record.
    """
    committed_ids, credited_ids = set(committed), set(credited)
    mismatches: list[str] = []
    observed = {h: (v.balance + v.consumed + v.reserved if v else 0) for h, v in views.items()}
    in_flight = 0
    for holder, view in views.items():
        if view is None:
            mismatches.append(f"{holder} is missing from Redis")
            continue
        for p in view.pending:
            if p.gen != gen:
                continue  # dropped by the rebuild; the ledger decided it
            if p.transfer_id not in committed_ids:
                if not p.incoming:
                    observed[p.source] += p.amount
                    in_flight += p.amount
            elif p.transfer_id not in credited_ids:
                observed[p.target] = observed.get(p.target, 0) + p.amount
                in_flight += p.amount

    def ledgered(holder: str) -> int:
        if holder == MAIN:  # main carries over from generation to generation
            return sum(v for (h, _), v in ledger.items() if h == MAIN)
        return ledger.get((holder, gen), 0)

    in_doubt = 0
    settled = 0  # consumption of lost sub-buckets, booked in the ledger
    doubt_by_holder: dict[str, int] = {}
    for (holder, g), amount in ledger.items():
        if holder == CONSUMED:
            settled += amount
            continue
        if holder in (EXTERNAL, MAIN) or (holder in views and g == gen):
            continue
        in_doubt += amount
        doubt_by_holder[holder] = doubt_by_holder.get(holder, 0) + amount

    holders = []
    for holder, view in views.items():
        expected = ledgered(holder)
        if view is not None and observed[holder] != expected:
            mismatches.append(f"{holder}: Redis shows {observed[holder]}, the ledger granted {expected}")
        holders.append(
            HolderAudit(
                holder,
                observed[holder],
                expected,
                view.balance if view else 0,
                view.consumed if view else 0,
                doubt_by_holder.pop(holder, 0),
                view.reserved if view else 0,
            )
        )
    holders.extend(
        HolderAudit(h, 0, 0, 0, 0, amount) for h, amount in sorted(doubt_by_holder.items()) if amount
    )

    external_in = -sum(v for (h, _), v in ledger.items() if h == EXTERNAL)
    if external_in != total:
        mismatches.append(f"budget total {total} differs from the ledger's creates and top-ups {external_in}")
    main_view = views.get(MAIN)
    main = main_view.balance if main_view else 0
    held = sum(v.balance for h, v in views.items() if v is not None and h != MAIN)
    consumed = settled + sum(v.consumed for h, v in views.items() if v is not None and h != MAIN)
    reserved = sum(v.reserved for v in views.values() if v is not None)
    report = AuditReport(
        budget_id, total, main, held, in_flight, reserved, in_doubt, consumed, tuple(holders)
    )
    if main + held + in_flight + reserved + in_doubt + consumed != total:
        mismatches.append(f"identity broken: {report.identity()}")
    return AuditReport(
        budget_id,
        total,
        main,
        held,
        in_flight,
        reserved,
        in_doubt,
        consumed,
        tuple(holders),
        tuple(mismatches),
    )


def created_report(budget_id: str, total: int, sub_buckets: int) -> AuditReport:
    """What an audit of a budget just created finds: everything in main, each sub-bucket empty."""
    subs = tuple(HolderAudit(sub_holder(i), 0, 0, 0, 0) for i in range(sub_buckets))
    return AuditReport(
        budget_id=budget_id,
        total=total,
        main=total,
        held=0,
        in_flight=0,
        reserved=0,
        in_doubt=0,
        consumed=0,
        holders=(HolderAudit(MAIN, total, total, total, 0), *subs),
    )


class Auditor:
    def __init__(self, registry: Registry, buckets: BucketStore, ledger: LedgerStore) -> None:
        self.registry = registry
        self.buckets = buckets
        self.ledger = ledger

    async def audit(self, budget_id: str, attempts: int = SNAPSHOT_TRIES) -> AuditReport:
        """Audit one budget from a consistent snapshot (``_once``), trying up to ``attempts``
        times while its holders keep moving budget among them; the last try says which did."""
        report = await self._once(budget_id)
        for _ in range(max(attempts, 1) - 1):
            if not report.unsettled:
                break
            await asyncio.sleep(0.002)
            report = await self._once(budget_id)
        _observe(report)
        return report

    async def audit_many(self, budget_ids: Sequence[str]) -> dict[str, AuditReport]:
        """Audit a page of budgets as ``audit`` does one, in a fixed number of round trips: Redis
        read in two pipelines before the ledger and two after, the ledger in one transaction. A
        budget whose holders moved budget while it was read is audited again on its own
        (``audit``, with its retries). Budgets that do not exist are left out."""
        rows = await self.ledger.get_budgets(budget_ids)
        ids = [b for b in budget_ids if b in rows]
        before = await self._views_many(rows, ids)
        pending = [p for b in ids for v in before[b].values() if v is not None for p in v.pending]
        again, kinds, balances = await self.ledger.audit_snapshots(ids, [p.transfer_id for p in pending])
        committed = {tid for tid, kind in kinds.items() if kind != "abort"}
        after = await self._views_many(rows, ids)
        reports: dict[str, AuditReport] = {}
        for budget_id in ids:
            views = before[budget_id]
            moved = {
                h
                for h in set(views) | set(after[budget_id])
                if _moves(views.get(h)) != _moves(after[budget_id].get(h))
            }
            row = again.get(budget_id)
            if moved or row is None or row.redis_gen != rows[budget_id].redis_gen:
                reports[budget_id] = await self.audit(budget_id)
                continue
            credited = [
                p.transfer_id
                for v in views.values()
                if v is not None
                for p in v.pending
                if p.transfer_id in committed
                and (ledger_only(p.target) or await self.buckets.credited(budget_id, p.target, p.transfer_id))
            ]
            report = reconcile(
                budget_id=budget_id,
                total=row.total,
                gen=row.redis_gen,
                views=views,
                ledger=balances.get(budget_id, {}),
                committed=committed,
                credited=credited,
            )
            _observe(report)
            reports[budget_id] = report
        return reports

    async def _views_many(
        self, rows: Mapping[str, BudgetRow], ids: Sequence[str]
    ) -> dict[str, dict[str, BucketView | None]]:
        """``_views`` of each budget, in two pipelines (agents' sets, then every bucket)."""
        agents = await self.buckets.agent_holders_many(ids)
        wanted = [
            (b, h)
            for b, theirs in zip(ids, agents, strict=True)
            for h in [MAIN, *(sub_holder(i) for i in range(rows[b].sub_buckets)), *theirs]
        ]
        views: dict[str, dict[str, BucketView | None]] = {b: {} for b in ids}
        for (budget_id, holder), view in zip(wanted, await self.buckets.read_many(wanted), strict=True):
            if agent_of(holder) is None:
                views[budget_id][holder] = view
            elif view is not None and view.gen == rows[budget_id].redis_gen:
                views[budget_id][holder] = view  # an agent's holding of this generation only, as in _views
        return views

    async def _views(self, budget_id: str, meta: BudgetMeta) -> dict[str, BucketView | None]:
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        views = {h: await self.buckets.read(budget_id, h) for h in holders}
        for holder in await self.buckets.agent_holders(budget_id):
            # An agent's holding of an older generation (or none yet in this one) is not live: what
            # the ledger says it held then is in doubt, as for a lost sub-bucket.
            view = await self.buckets.read(budget_id, holder)
            if view is not None and view.gen == meta.gen:
                views[holder] = view
        return views

    async def _once(self, budget_id: str) -> AuditReport:
        """One snapshot: Redis, the ledger in one transaction, then Redis again.

        Within a bucket a deduction, return, reservation or its end only moves units among
        balance, consumed and reserved, which one script does atomically; budget leaves a bucket
        for another only through a transfer, which changes the bucket's pending records or its
        sum. So if every bucket shows the same sum and pending records before and after the
        ledger is read, Redis held those values all along, and the ledger was read at one instant
        in between: the numbers are one instant's. A bucket that changed is ``unsettled``.
        """
        self.registry.forget(budget_id)
        meta = await self.registry.get(budget_id)
        views = await self._views(budget_id, meta)
        pending = [p for v in views.values() if v is not None for p in v.pending]
        row, kinds, balances = await self.ledger.audit_snapshot(budget_id, [p.transfer_id for p in pending])
        committed = {tid for tid, kind in kinds.items() if kind != "abort"}
        # A committed transfer to an in-doubt holder (ledger only, no bucket) is at its target once
        # ledgered: only its source's pending record is left to clear.
        credited = [
            p.transfer_id
            for p in pending
            if p.transfer_id in committed
            and (ledger_only(p.target) or await self.buckets.credited(budget_id, p.target, p.transfer_id))
        ]
        after = await self._views(budget_id, meta)
        total = row.total if row is not None else 0
        report = reconcile(
            budget_id=budget_id,
            total=total,
            gen=meta.gen,
            views=views,
            ledger=balances,
            committed=committed,
            credited=credited,
        )
        moved = tuple(
            sorted(h for h in set(views) | set(after) if _moves(views.get(h)) != _moves(after.get(h)))
        )
        if moved:
            return replace(report, mismatches=(), unsettled=moved)
        return report


def _moves(view: BucketView | None) -> tuple[int, frozenset[str]] | None:
    """What changes only when budget moves between buckets: the sum and the pending transfers."""
    if view is None:
        return None
    return view.balance + view.consumed + view.reserved, frozenset(p.transfer_id for p in view.pending)


def _observe(report: AuditReport) -> None:
    """Tell the per-budget series (a budget this center does not look after is ignored)."""
    BUDGETS.observe(
        report.budget_id,
        total=report.total,
        remaining=report.available,
        consumed=report.consumed,
        in_doubt=report.in_doubt,
        balanced=not report.mismatches,
    )
