"""Budget administration at the center: create, top up, change state, read, list.

Each change is committed to PostgreSQL first and then mirrored into Redis; a
crash in between leaves Redis behind the ledger, which the next request notices
(a missing bucket is rebuilt from the ledger; a top-up's pending record is
finished by the sweeper).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from quota_center.buckets.store import BucketStore, Pending
from quota_center.budgets.activity import Activity
from quota_center.budgets.audit import Auditor, AuditReport, created_report
from quota_center.budgets.registry import Registry
from quota_center.budgets.sellout import SellOut
from quota_center.errors import BucketLost, StaleGeneration, UnknownBudget
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.errors import BudgetNotFound
from quota_center.ledger.models import BudgetRow
from quota_center.ledger.store import LedgerStore
from quota_center.metrics import BUDGETS
from quota_center.recovery.rebuild import Recovery
from quota_center.transfers.protocol import Transfers, now_ms
from quota_rules.limits import InvalidInput, check_amount, check_budget_id, check_request_id, check_total
from quota_rules.policy import Policy, resolve

MAX_UNIT = 64


@dataclass(frozen=True, slots=True)
class BudgetView:
    """A budget's definition with its live numbers."""

    row: BudgetRow
    report: AuditReport


@dataclass(frozen=True, slots=True)
class Change:
    """Result of an admin change: OK, EXISTS (a repeated identical call) or CONFLICT."""

    code: str
    view: BudgetView
    message: str = ""


class Admin:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        ledger: LedgerStore,
        transfers: Transfers,
        recovery: Recovery,
        auditor: Auditor,
        default_sub_buckets: int,
    ) -> None:
        self.registry = registry
        self.buckets = buckets
        self.ledger = ledger
        self.transfers = transfers
        self.recovery = recovery
        self.auditor = auditor
        self.default_sub_buckets = default_sub_buckets
        # Told of top-ups and state changes (a sold-out budget may serve again).
        self.sellout: SellOut | None = None
        # A budget changed by an operator is active (its gauges follow); a closed one leaves.
        self.activity: Activity | None = None

    async def create(
        self,
        budget_id: str,
        *,
        unit: str,
        total: int,
        policy: Policy,
        valid_from: datetime | None,
        valid_until: datetime | None,
        actor: str,
        reason: str,
    ) -> Change:
        check_budget_id(budget_id)
        check_total(total)
        if not unit or len(unit) > MAX_UNIT or not unit.isprintable():
            raise InvalidInput(f"unit must be 1..{MAX_UNIT} printable characters, e.g. USD-cent or item")
        if valid_from and valid_until and valid_from >= valid_until:
            raise InvalidInput("valid_from must be before valid_until")
        if policy.sub_buckets == 0:
            policy = Policy(**{**policy.to_json(), "sub_buckets": self.default_sub_buckets})  # type: ignore[arg-type]
        resolved = resolve(policy, total)
        row, created = await self.ledger.create_budget(
            budget_id,
            unit=unit,
            total=total,
            policy=resolved.to_json(),
            sub_buckets=resolved.sub_buckets,
            valid_from=valid_from,
            valid_until=valid_until,
            actor=actor,
            reason=reason,
        )
        if not created:
            same = row.same_definition(
                unit=unit,
                total=total,
                valid_from=valid_from,
                valid_until=valid_until,
                policy=resolved.to_json(),
                sub_buckets=resolved.sub_buckets,
            )
            code = "EXISTS" if same else "CONFLICT"
            text = (
                "budget already exists" if same else f"budget {budget_id} exists with a different definition"
            )
            return Change(code, await self.view(budget_id), text)
        inits = [self.buckets.init_bucket(budget_id, MAIN, total, row.redis_gen, row.state)]
        inits += [
            self.buckets.init_bucket(budget_id, sub_holder(i), 0, row.redis_gen, row.state)
            for i in range(resolved.sub_buckets)
        ]
        await asyncio.gather(*inits)
        # The numbers it was created with (everything in main), not an audit: creating a hundred
        # thousand budgets should cost what creating them takes.
        return Change("OK", BudgetView(row, created_report(budget_id, total, resolved.sub_buckets)))

    async def top_up(self, budget_id: str, request_id: str, amount: int, actor: str, reason: str) -> Change:
        """Add to the total once per request id: pending record, ledger row, credit, clear."""
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_amount(amount)
        tid = f"top_up:{budget_id}:{request_id}"
        if self.activity is not None:
            await self.activity.ensure(budget_id)  # before the take: the sweeper finishes what a crash left
        for _ in range(3):
            meta = await self.registry.get(budget_id)
            took = await self.buckets.take(budget_id, MAIN, tid, amount, "in", meta.gen, MAIN, now_ms())
            if took.status == "LOST":
                await self.recovery.rebuild(budget_id)
                continue
            if took.status == "STALE":
                self.registry.forget(budget_id)
                continue
            mine = took.status == "OK"
            try:
                _, applied = await self.ledger.top_up(budget_id, request_id, amount, meta.gen, actor, reason)
            except StaleGeneration:
                await self._drop(budget_id, tid, mine)
                self.registry.forget(budget_id)
                continue
            except BaseException:
                await self._drop(budget_id, tid, mine)
                raise
            if applied:
                await self.transfers.finish(budget_id, _incoming(tid, amount, meta.gen))
                await self._changed(budget_id)
                return Change("OK", await self.view(budget_id))
            # A retry: the first attempt (or the sweeper) credits the original.
            await self._drop(budget_id, tid, mine)
            return Change("EXISTS", await self.view(budget_id), f"top-up {request_id} was already applied")
        raise BucketLost(budget_id, MAIN)

    async def set_state(self, budget_id: str, state: str, actor: str, reason: str) -> Change:
        check_budget_id(budget_id)
        row = await self.ledger.set_state(budget_id, state, actor, reason)
        await self._mirror_state(budget_id, row)
        if self.activity is not None:
            await (
                self.activity.close(budget_id) if row.state == "closed" else self.activity.touch(budget_id)
            )
        if row.state == "closed":
            BUDGETS.forget(budget_id)  # a closed budget's series go from the next scrape
        await self._changed(budget_id)  # resumed: decided on afresh
        return Change("OK", await self.view(budget_id))

    async def view(self, budget_id: str) -> BudgetView:
        check_budget_id(budget_id)
        row = await self.ledger.get_budget(budget_id)
        if row is None:
            raise UnknownBudget(budget_id)
        try:
            report = await self.auditor.audit(budget_id)
        except BudgetNotFound:
            raise UnknownBudget(budget_id) from None
        return BudgetView(row, report)

    async def list_views(self, *, state: str | None, after: str | None, limit: int) -> list[BudgetView]:
        """A page of budgets in id order, with their numbers computed together (``Auditor.audit_many``)."""
        rows = await self.ledger.list_budgets(state=state, after=after, limit=limit)
        reports = await self.auditor.audit_many([r.budget_id for r in rows])
        return [BudgetView(row, reports[row.budget_id]) for row in rows if row.budget_id in reports]

    async def all_ids(self, *, closed: bool = True) -> list[str]:
        """Every budget's id (``closed``: closed ones too), in id order."""
        ids: list[str] = []
        after: str | None = None
        while True:
            rows = await self.ledger.list_budgets(state=None, after=after, limit=1000)
            ids.extend(r.budget_id for r in rows if closed or r.state != "closed")
            if len(rows) < 1000:
                return ids
            after = rows[-1].budget_id

    async def _mirror_state(self, budget_id: str, row: BudgetRow) -> None:
        holders = [MAIN, *(sub_holder(i) for i in range(row.sub_buckets))]
        for holder in holders:
            if not await self.buckets.set_state(budget_id, holder, row.state):
                # Lost from Redis: the rebuild creates the buckets with the ledger's state.
                await self.recovery.rebuild(budget_id)
                return

    async def _changed(self, budget_id: str) -> None:
        if self.sellout is not None:
            await self.sellout.changed(budget_id)

    async def _drop(self, budget_id: str, tid: str, mine: bool) -> None:
        if mine:
            await self.buckets.restore(budget_id, MAIN, tid)


def _incoming(tid: str, amount: int, gen: int) -> Pending:
    return Pending(tid, MAIN, MAIN, amount, gen, 0)
