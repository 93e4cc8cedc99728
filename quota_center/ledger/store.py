"""LedgerStore: the service's only door to PostgreSQL.

Budget changes run as small transactions of their own (see budgets.py); transfers go through the
group committer (see group_commit.py), because they are the hot path: one ledger row per slice
grant, release or settlement, and in central mode one per deduction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from quota_center.clock import Clock

from . import budgets, spend_log, validate
from .errors import InvalidArgument
from .group_commit import GroupCommitter
from .migrate import migrate
from .models import (
    CURRENT_GEN,
    MARKER_KINDS,
    BudgetRow,
    LedgerEntry,
    LedgerRow,
    LedgerTotals,
    PolicyValue,
    Rebuild,
    RecordOutcome,
    row_from_record,
)
from .spend_log import DoubtRow, InstanceRow, ManualBooking, SpendEntry

# A health check must answer quickly, even when the pool waits for a dead server.
_PING_TIMEOUT_S = 2.0

# Marker rows ('abort', 'state', 'rebuild') move nothing; excluding them keeps the sums honest even if a
# future kind of marker were written with a non-zero amount by mistake.
_BALANCES = """
SELECT holder, gen, sum(delta) AS balance FROM (
    SELECT to_holder AS holder, gen, amount AS delta FROM ledger
    WHERE budget_id = $1 AND NOT (kind = ANY($2::text[]))
    UNION ALL
    SELECT from_holder, gen, -amount FROM ledger
    WHERE budget_id = $1 AND NOT (kind = ANY($2::text[]))
) moves
GROUP BY holder, gen
"""

# The same for several budgets at once.
_BALANCES_MANY = """
SELECT budget_id, holder, gen, sum(delta) AS balance FROM (
    SELECT budget_id, to_holder AS holder, gen, amount AS delta FROM ledger
    WHERE budget_id = ANY($1::text[]) AND NOT (kind = ANY($2::text[]))
    UNION ALL
    SELECT budget_id, from_holder, gen, -amount FROM ledger
    WHERE budget_id = ANY($1::text[]) AND NOT (kind = ANY($2::text[]))
) moves
GROUP BY budget_id, holder, gen
"""


class LedgerStore:
    """Budgets and the append-only ledger, over an asyncpg pool. Create with `await open(dsn)`."""

    def __init__(self, pool: Any, committer: GroupCommitter) -> None:
        self._pool = pool
        self._committer = committer
        self._closed = False
        # The spend log's entries go to the partition of this clock's day (the center sets its own).
        self.clock = Clock()
        self._days: set[date] = set()  # partitions known to exist

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        batch_max: int = 512,
        batch_wait_ms: float = 1.0,
        command_timeout: float | None = 30.0,
    ) -> LedgerStore:
        """Connect, apply missing migrations and start the group-commit writer."""
        validate.count("batch_max", batch_max, low=1, high=100_000)
        if not 0 <= batch_wait_ms <= 10_000:
            raise InvalidArgument("batch_wait_ms must be between 0 and 10000")
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=command_timeout
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, GroupCommitter(pool, batch_max=batch_max, batch_wait_ms=batch_wait_ms))

    async def close(self) -> None:
        """Write every queued entry, then close the pool. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._committer.close()
        finally:
            await self._pool.close()

    async def ping(self) -> bool:
        """True if PostgreSQL answers a trivial query within a couple of seconds."""
        if self._closed:
            return False
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S):
                return bool(await self._pool.fetchval("SELECT true"))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    @property
    def pool(self) -> Any:
        """The asyncpg pool, for read-only queries (audit, tests)."""
        return self._pool

    @property
    def batches_written(self) -> int:
        return self._committer.batches_written

    @property
    def rows_written(self) -> int:
        return self._committer.rows_written

    @property
    def batches_failed(self) -> int:
        return self._committer.batches_failed

    @property
    def queued(self) -> int:
        """Entries waiting for the next batch (a gauge for metrics)."""
        return self._committer.queued

    # -- budgets -------------------------------------------------------------------------------

    async def create_budget(
        self,
        budget_id: str,
        *,
        unit: str,
        total: int,
        policy: dict[str, PolicyValue],
        sub_buckets: int,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        actor: str = "",
        reason: str = "",
    ) -> tuple[BudgetRow, bool]:
        """Create a budget and its 'create' ledger row; (existing, False) if the id is taken.

        Compare with `BudgetRow.same_definition(...)` to tell a retry (EXISTS) from a CONFLICT.
        """
        return await budgets.create(
            self._pool,
            budget_id,
            unit=unit,
            total=total,
            valid_from=valid_from,
            valid_until=valid_until,
            policy=policy,
            sub_buckets=sub_buckets,
            actor=actor,
            reason=reason,
        )

    async def seen_filters_started(self) -> bool:
        """Whether the seen filters were ever started for this ledger (buckets/seen.py)."""
        return bool(await self._pool.fetchval("SELECT seen_filters_started FROM ledger_identity"))

    async def note_seen_filters_started(self) -> None:
        await self._pool.execute("UPDATE ledger_identity SET seen_filters_started = true")

    async def identity(self) -> str:
        """This ledger's id (migration 0005): names the Redis keys that are the ledger's own."""
        return str(await self._pool.fetchval("SELECT id FROM ledger_identity"))

    async def get_budget(self, budget_id: str) -> BudgetRow | None:
        return await budgets.get(self._pool, budget_id)

    async def list_budgets(
        self, *, state: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[BudgetRow]:
        """Budgets ordered by id, strictly after `after` (keyset paging), optionally of one state."""
        return await budgets.list_page(self._pool, state=state, after=after, limit=limit)

    async def set_state(self, budget_id: str, state: str, actor: str = "", reason: str = "") -> BudgetRow:
        """Move to 'active', 'paused' or 'closed'. Same state: no-op. Leaving 'closed': InvalidTransition."""
        return await budgets.set_state(self._pool, budget_id, state, actor, reason)

    async def top_up(
        self, budget_id: str, request_id: str, amount: int, gen: int, actor: str = "", reason: str = ""
    ) -> tuple[BudgetRow, bool]:
        """Add `amount` to the total, once per request_id; (row, False) for a retry.

        `gen` is the generation the caller saw; StaleGeneration if the budget was rebuilt since
        (checked after idempotency: a retry of an applied top-up still gets (row, False)).
        """
        return await budgets.top_up(self._pool, budget_id, request_id, amount, gen, actor, reason)

    async def bump_generation(
        self, budget_id: str, expected_gen: int, actor: str = "recovery", reason: str = "Redis lost"
    ) -> Rebuild:
        """Start generation expected_gen + 1 unless another caller already did; return the
        generation now current and what main holds according to the ledger (all generations)."""
        return await budgets.bump_generation(self._pool, budget_id, expected_gen, actor, reason)

    # -- transfers -----------------------------------------------------------------------------

    async def record(self, entry: LedgerEntry) -> RecordOutcome:
        """Write one movement through group commit and say what became of its transfer id.

        STALE means nothing was written because `entry.gen` is not the budget's generation (it was
        rebuilt). Raises BudgetNotFound, InvalidArgument, StoreClosed, or the database error that
        failed the whole batch (then nothing of the batch was written; retrying is safe).
        """
        return await self._committer.submit(validate.entry(entry))

    async def abort(self, budget_id: str, transfer_id: str, actor: str = "", reason: str = "") -> bool:
        """Claim `transfer_id` for an abort marker. True if the id is (now or already) aborted,
        False if a real transfer was committed under it first."""
        marker = LedgerEntry(budget_id, transfer_id, "abort", "main", "main", 0, actor, reason, CURRENT_GEN)
        outcome = await self.record(marker)
        return outcome in (RecordOutcome.COMMITTED, RecordOutcome.ABORTED)

    async def statuses(self, transfer_ids: Sequence[str]) -> dict[str, str]:
        """transfer_id -> kind for the ids that have a row; absent ids are not in the result."""
        ids = [validate.text("transfer_id", t, max_len=validate.MAX_TRANSFER_ID) for t in transfer_ids]
        if not ids:
            return {}
        recs = await self._pool.fetch(
            "SELECT transfer_id, kind FROM ledger WHERE transfer_id = ANY($1::text[])", ids
        )
        return {str(r["transfer_id"]): str(r["kind"]) for r in recs}

    # -- reading the ledger --------------------------------------------------------------------

    async def audit_snapshot(
        self, budget_id: str, transfer_ids: Sequence[str]
    ) -> tuple[BudgetRow | None, dict[str, str], dict[tuple[str, int], int]]:
        """The budget, the kinds of these transfers and the holder balances, read in one
        REPEATABLE READ transaction: one instant of the ledger (quota_center/budgets/audit.py)."""
        validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
        rows, kinds, balances = await self.audit_snapshots([budget_id], transfer_ids)
        return rows.get(budget_id), kinds, balances.get(budget_id, {})

    async def get_budgets(self, budget_ids: Sequence[str]) -> dict[str, BudgetRow]:
        """The budgets among ``budget_ids`` that exist, by id (one query)."""
        return await budgets.get_many(self._pool, budget_ids)

    async def audit_snapshots(
        self, budget_ids: Sequence[str], transfer_ids: Sequence[str]
    ) -> tuple[dict[str, BudgetRow], dict[str, str], dict[str, dict[tuple[str, int], int]]]:
        """``audit_snapshot`` of a page of budgets in one REPEATABLE READ transaction (three queries
        in all): the rows by id, the kinds of these transfers, each budget's holder balances."""
        ids = [validate.text("transfer_id", t, max_len=validate.MAX_TRANSFER_ID) for t in transfer_ids]
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await budgets.get_many(conn, budget_ids)
            recs = (
                await conn.fetch(
                    "SELECT transfer_id, kind FROM ledger WHERE transfer_id = ANY($1::text[])", ids
                )
                if ids
                else []
            )
            balances = await conn.fetch(_BALANCES_MANY, list(rows), sorted(MARKER_KINDS))
        by_budget: dict[str, dict[tuple[str, int], int]] = {b: {} for b in rows}
        for r in balances:
            by_budget[str(r["budget_id"])][(str(r["holder"]), int(r["gen"]))] = int(r["balance"])
        return rows, {str(r["transfer_id"]): str(r["kind"]) for r in recs}, by_budget

    async def holder_balances(self, budget_id: str) -> dict[tuple[str, int], int]:
        """Net amount (Σ in − Σ out) per (holder, generation). The values always sum to 0.

        A sub-bucket's balance in an old generation is what it held when Redis was lost: in doubt.
        """
        validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
        recs = await self._pool.fetch(_BALANCES, budget_id, sorted(MARKER_KINDS))
        return {(str(r["holder"]), int(r["gen"])): int(r["balance"]) for r in recs}

    async def holder_totals(self, budget_id: str) -> dict[str, int]:
        """Net amount per holder over all generations; 'external' is −total."""
        totals: dict[str, int] = {}
        for (holder, _), amount in (await self.holder_balances(budget_id)).items():
            totals[holder] = totals.get(holder, 0) + amount
        return totals

    async def totals(self, budget_id: str) -> LedgerTotals | None:
        """The budget's total next to what the ledger brought in from 'external'; None if unknown."""
        validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
        rec = await self._pool.fetchrow(
            """
            SELECT b.total,
                   coalesce(sum(l.amount) FILTER (WHERE l.from_holder = 'external'), 0)
                 - coalesce(sum(l.amount) FILTER (WHERE l.to_holder = 'external'), 0) AS external_in,
                   count(l.seq) AS rows, coalesce(max(l.seq), 0) AS last_seq
            FROM budgets b LEFT JOIN ledger l ON l.budget_id = b.budget_id
            WHERE b.budget_id = $1
            GROUP BY b.total
            """,
            budget_id,
        )
        if rec is None:
            return None
        return LedgerTotals(
            budget_id=budget_id,
            total=int(rec["total"]),
            external_in=int(rec["external_in"]),
            rows=int(rec["rows"]),
            last_seq=int(rec["last_seq"]),
        )

    async def entries(self, budget_id: str, *, limit: int = 100, after_seq: int = 0) -> list[LedgerRow]:
        """Ledger rows of one budget in commit order, with seq > after_seq (keyset paging)."""
        validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
        validate.count("limit", limit, low=1, high=10_000)
        validate.count("after_seq", after_seq, low=0, high=2**63 - 1)
        recs = await self._pool.fetch(
            """
            SELECT seq, budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason,
                   gen, created_at
            FROM ledger WHERE budget_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
            """,
            budget_id,
            after_seq,
            limit,
        )
        return [row_from_record(r) for r in recs]

    # -- the spend log and the center instances (see spend_log.py) ------------------------------

    async def log_spends(self, entries: list[SpendEntry]) -> datetime:
        """Write spend-log entries on today's partition (an id already there is kept); return the
        database's now()."""
        day = self.today()
        if day not in self._days:
            await spend_log.ensure_day(self._pool, day)
            self._days.add(day)
        return await spend_log.write(self._pool, entries, day)

    def today(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.clock.day())

    async def ensure_spend_day(self, day: date) -> None:
        """Create the spend log's partition of ``day`` ahead of its first entry."""
        await spend_log.ensure_day(self._pool, day)
        self._days.add(day)

    async def spend_days(self) -> list[date]:
        """The days the spend log holds, oldest first."""
        return await spend_log.days(self._pool)

    async def expire_spend_days(self, keep_from: date) -> list[date]:
        """Drop the spend log's days before ``keep_from`` (their consumption is kept in sum)."""
        dropped = await spend_log.expire_days(self._pool, keep_from)
        self._days.difference_update(dropped)
        return dropped

    async def db_now(self) -> datetime:
        now: datetime = await self._pool.fetchval("SELECT now()")
        return now

    async def spend_lookup(self, request_id: str) -> SpendEntry | None:
        """The logged deduction or return under this request id, if any."""
        return await spend_log.lookup(self._pool, request_id)

    async def logged_returns(self, deduction_id: str) -> int:
        """What the log says was returned of a deduction, in total."""
        return await spend_log.returned(self._pool, deduction_id)

    async def logged_consumption(self, budget_id: str, gen: int, holder: str) -> int:
        """Logged deductions minus logged returns of one sub-bucket in one generation."""
        return await spend_log.consumption(self._pool, budget_id, gen, holder)

    async def register_instance(self, instance_id: str, name: str) -> None:
        await spend_log.register(self._pool, instance_id, name)

    async def instance_heartbeat(self, instance_id: str, flushed_until: datetime) -> None:
        """seen_at = now(); flushed_until moves forward to the given instant, never back."""
        await spend_log.heartbeat(self._pool, instance_id, flushed_until)

    async def stop_instance(self, instance_id: str) -> None:
        await spend_log.stop(self._pool, instance_id)

    async def running_instances(self, *, seen_since: datetime, started_before: datetime) -> list[InstanceRow]:
        """Instances not stopped cleanly, seen since ``seen_since``, started before ``started_before``."""
        return await spend_log.running(self._pool, seen_since=seen_since, started_before=started_before)

    async def generation_start(self, budget_id: str, gen: int) -> datetime | None:
        """When the budget entered generation ``gen`` (creation, or the rebuild row); None if never."""
        return await spend_log.generation_start(self._pool, budget_id, gen)

    async def doubt_holders(self, budget_id: str) -> list[DoubtRow]:
        """The budget's in-doubt holders ('doubt:sub:3@1'), settled ones included."""
        return await spend_log.doubt_rows(self._pool, budget_id)

    async def budgets_in_doubt(self) -> list[str]:
        """Budgets with at least one in-doubt holder not yet released."""
        return await spend_log.open_budgets(self._pool)

    async def book_in_doubt(
        self,
        budget_id: str,
        holder: str,
        delta: int,
        *,
        expect_booked: int,
        expect_balance: int,
        actor: str = "settlement",
        reason: str = "",
    ) -> bool:
        """Book ``delta`` of an in-doubt holder as consumed (negative: back into doubt); False if
        the holder changed since the caller read it."""
        return await spend_log.book(
            self._pool,
            budget_id,
            holder,
            delta,
            expect_booked=expect_booked,
            expect_balance=expect_balance,
            actor=actor,
            reason=reason,
        )

    async def release_in_doubt(
        self,
        budget_id: str,
        holder: str,
        transfer_id: str,
        amount: int,
        gen: int,
        actor: str = "settlement",
        reason: str = "",
    ) -> RecordOutcome:
        """Ledger row moving an in-doubt holder's whole balance to main, at most once per holder."""
        return await spend_log.release(self._pool, budget_id, holder, transfer_id, amount, gen, actor, reason)

    async def settle_by_hand(
        self, budget_id: str, holder: str, consumed: int, actor: str = "", reason: str = ""
    ) -> ManualBooking:
        """Book what an operator says an in-doubt holder consumed (see spend_log.book_manual)."""
        return await spend_log.book_manual(self._pool, budget_id, holder, consumed, actor, reason)
