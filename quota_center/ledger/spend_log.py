"""The write-behind spend log, the registry of center instances, and the rows that settle in doubt.

See docs/center.md#spend-log-rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from quota_center.holders import ledger_only, lost_gen, lost_holder
from quota_rules.limits import MAX_AMOUNT

from . import validate
from .errors import BudgetNotFound, InvalidArgument, LedgerConflict, LedgerError
from .models import RecordOutcome

CONSUMED: Final = "consumed"
KINDS: Final = ("deduct", "return", "cancel")


class HolderNotFound(BudgetNotFound):
    """The budget has no in-doubt holder of that name."""

    def __init__(self, budget_id: str, holder: str, known: list[str]) -> None:
        LedgerError.__init__(
            self,
            f"budget {budget_id!r} has no in-doubt holder {holder!r}"
            + (f" (in doubt: {', '.join(known)})" if known else " (nothing is in doubt)"),
        )
        self.budget_id = budget_id
        self.holder = holder


@dataclass(frozen=True, slots=True)
class SpendEntry:
    """One deduction or return a sub-bucket served, as the log keeps it."""

    request_id: str
    budget_id: str
    gen: int
    holder: str
    kind: str
    amount: int
    deduction_id: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance_id: str
    name: str
    started_at: datetime
    seen_at: datetime
    flushed_until: datetime
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class DoubtRow:
    """An in-doubt holder as the ledger sees it."""

    holder: str
    balance: int  # still in doubt; negative only before the first settlement (see settlement.plan)
    booked: int  # net booked as consumed from the log ('settle' rows)
    manual: int | None  # consumed booked by an operator, None if none
    released: int | None  # released to main: the holder is settled for good; None if not yet

    @property
    def sub(self) -> str:
        """The lost sub-bucket: 'sub:3' for 'doubt:sub:3@1'."""
        return lost_holder(self.holder)

    @property
    def gen(self) -> int:
        """The generation it was lost in: 1 for 'doubt:sub:3@1'."""
        return lost_gen(self.holder)


@dataclass(frozen=True, slots=True)
class ManualBooking:
    """What a manual settlement booked (now, or by an earlier identical call)."""

    fresh: bool
    consumed: int
    remaining: int  # still to release to main (0 once released)
    released: int | None


def check_entry(e: SpendEntry) -> SpendEntry:
    """Refuse an entry the table would refuse: one bad row must never fail a whole batch."""
    validate.text("request_id", e.request_id, max_len=validate.MAX_TRANSFER_ID)
    validate.text("budget_id", e.budget_id, max_len=validate.MAX_BUDGET_ID)
    validate.text("holder", e.holder, max_len=validate.MAX_HOLDER)
    validate.count("gen", e.gen, low=1, high=validate.MAX_GEN)
    validate.amount("amount", e.amount, allow_zero=False)
    if e.kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {KINDS}, got {e.kind!r}")
    if (e.kind == "return") != (e.deduction_id is not None):
        raise InvalidArgument("a return, and only a return, names its deduction")
    if e.deduction_id is not None:
        validate.text("deduction_id", e.deduction_id, max_len=validate.MAX_TRANSFER_ID)
    return e


# -- the log ---------------------------------------------------------------------------------

# The data-modifying CTE runs whether or not it is read; now() is this statement's start, so it is
# no later than the moment the caller gets the answer (the writer's watermark relies on that).
_LOG: Final = """
WITH written AS (
    INSERT INTO spend_log (request_id, budget_id, gen, holder, kind, amount, deduction_id, day)
    SELECT *, $8::date FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[],
                                   $6::bigint[], $7::text[])
    ON CONFLICT (request_id, day) DO NOTHING
    RETURNING 1
)
SELECT now()
"""

# An id has one row, or (logged again across midnight) a first one that counts.
_LOOKUP: Final = """
SELECT request_id, budget_id, gen, holder, kind, amount, deduction_id FROM spend_log
WHERE request_id = $1 ORDER BY day LIMIT 1
"""

# Days of the log live in partitions named for them; the lock keeps two centers from creating or
# dropping the same one at once.
_DAYS_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('quota_center.spend_log.days'))"
_PARTITIONS: Final = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'spend_log'
ORDER BY c.relname
"""


def partition(day: date) -> str:
    return f"spend_log_{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    """The day of a partition named by ``partition``; None for any other name."""
    stem = name.removeprefix("spend_log_")
    if stem == name or len(stem) != 8 or not stem.isdigit():
        return None
    return date(int(stem[:4]), int(stem[4:6]), int(stem[6:]))


async def ensure_day(pool: Any, day: date) -> None:
    """Create the partition of ``day`` if it is missing."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_DAYS_LOCK)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition(day)} PARTITION OF spend_log"
            f" FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )


async def days(pool: Any) -> list[date]:
    """The days the log holds a partition for, oldest first."""
    found = [day_of(str(r["relname"])) for r in await pool.fetch(_PARTITIONS)]
    return sorted(d for d in found if d is not None)


async def expire_days(pool: Any, keep_from: date) -> list[date]:
    """Drop the partitions of the days before ``keep_from``, each in one transaction with adding
    what it consumed to spend_rollup (rows of ids the later days hold again are left to them).
    Returns the days dropped."""
    dropped: list[date] = []
    for day in await days(pool):
        if day >= keep_from:
            break
        name = partition(day)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_DAYS_LOCK)
            if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
                continue  # another center dropped it
            await conn.execute(
                f"""
                INSERT INTO spend_rollup (budget_id, gen, holder, consumed)
                SELECT budget_id, gen, holder, sum(CASE kind WHEN 'deduct' THEN amount ELSE -amount END)
                FROM {name} o
                WHERE kind IN ('deduct', 'return')
                  AND NOT EXISTS (SELECT 1 FROM spend_log n WHERE n.request_id = o.request_id AND n.day > o.day)
                GROUP BY budget_id, gen, holder
                ON CONFLICT (budget_id, gen, holder) DO UPDATE SET consumed = spend_rollup.consumed + EXCLUDED.consumed
                """
            )
            await conn.execute(f"DROP TABLE {name}")
        dropped.append(day)
    return dropped


async def write(pool: Any, entries: list[SpendEntry], day: date) -> datetime:
    """Write entries on ``day``'s partition (an id already there is kept); return the database's now()."""
    now: datetime = await pool.fetchval(
        _LOG,
        [e.request_id for e in entries],
        [e.budget_id for e in entries],
        [e.gen for e in entries],
        [e.holder for e in entries],
        [e.kind for e in entries],
        [e.amount for e in entries],
        [e.deduction_id for e in entries],
        day,
    )
    return now


async def lookup(pool: Any, request_id: str) -> SpendEntry | None:
    rec = await pool.fetchrow(_LOOKUP, request_id)
    if rec is None:
        return None
    return SpendEntry(
        request_id=str(rec["request_id"]),
        budget_id=str(rec["budget_id"]),
        gen=int(rec["gen"]),
        holder=str(rec["holder"]),
        kind=str(rec["kind"]),
        amount=int(rec["amount"]),
        deduction_id=None if rec["deduction_id"] is None else str(rec["deduction_id"]),
    )


async def returned(pool: Any, deduction_id: str) -> int:
    value = await pool.fetchval(
        """
        SELECT coalesce(sum(amount), 0) FROM (
            SELECT DISTINCT ON (request_id) amount FROM spend_log
            WHERE deduction_id = $1 AND kind = 'return' ORDER BY request_id, day
        ) r
        """,
        deduction_id,
    )
    return int(value)


async def consumption(pool: Any, budget_id: str, gen: int, holder: str) -> int:
    """Deductions minus returns served by one sub-bucket in one generation: the days dropped
    (spend_rollup) and the days kept."""
    value = await pool.fetchval(
        """
        SELECT coalesce((SELECT consumed FROM spend_rollup WHERE budget_id = $1 AND gen = $2 AND holder = $3), 0)
             + coalesce((
                SELECT sum(CASE kind WHEN 'deduct' THEN amount ELSE -amount END) FROM (
                    SELECT DISTINCT ON (request_id) kind, amount FROM spend_log
                    WHERE budget_id = $1 AND gen = $2 AND holder = $3 AND kind IN ('deduct', 'return')
                    ORDER BY request_id, day
                ) d
             ), 0)
        """,
        budget_id,
        gen,
        holder,
    )
    return int(value)


# -- the instance registry -------------------------------------------------------------------

_INSTANCE_COLUMNS: Final = "instance_id, name, started_at, seen_at, flushed_until, stopped_at"


async def register(pool: Any, instance_id: str, name: str) -> None:
    await pool.execute("INSERT INTO center_instances (instance_id, name) VALUES ($1, $2)", instance_id, name)


async def heartbeat(pool: Any, instance_id: str, flushed_until: datetime) -> None:
    await pool.execute(
        """
        UPDATE center_instances SET seen_at = now(), flushed_until = greatest(flushed_until, $2)
        WHERE instance_id = $1
        """,
        instance_id,
        flushed_until,
    )


async def stop(pool: Any, instance_id: str) -> None:
    """Mark a clean stop: the caller has written everything and has no operation in flight."""
    await pool.execute(
        """
        UPDATE center_instances SET seen_at = now(), flushed_until = now(), stopped_at = now()
        WHERE instance_id = $1
        """,
        instance_id,
    )


async def running(pool: Any, *, seen_since: datetime, started_before: datetime) -> list[InstanceRow]:
    """Instances not stopped cleanly, seen since ``seen_since``, started before ``started_before``."""
    recs = await pool.fetch(
        f"""
        SELECT {_INSTANCE_COLUMNS} FROM center_instances
        WHERE stopped_at IS NULL AND seen_at >= $1 AND started_at < $2
        ORDER BY started_at
        """,
        seen_since,
        started_before,
    )
    return [
        InstanceRow(
            instance_id=str(r["instance_id"]),
            name=str(r["name"]),
            started_at=r["started_at"],
            seen_at=r["seen_at"],
            flushed_until=r["flushed_until"],
            stopped_at=r["stopped_at"],
        )
        for r in recs
    ]


async def generation_start(pool: Any, budget_id: str, gen: int) -> datetime | None:
    """When generation ``gen`` began: the budget's creation, or the commit of its rebuild row."""
    started: datetime | None
    if gen <= 1:
        started = await pool.fetchval("SELECT created_at FROM budgets WHERE budget_id = $1", budget_id)
    else:
        started = await pool.fetchval(
            "SELECT created_at FROM ledger WHERE transfer_id = $1", f"rebuild:{budget_id}:{gen}"
        )
    return started


# -- in-doubt holders ------------------------------------------------------------------------

# The WHERE clause repeats the partial index's predicate, so the planner uses ledger_doubt.
_DOUBT: Final = """
SELECT holder,
       sum(CASE WHEN to_holder = holder THEN amount ELSE -amount END) AS balance,
       coalesce(sum(CASE WHEN kind <> 'settle' THEN 0
                         WHEN to_holder = 'consumed' THEN amount ELSE -amount END), 0) AS booked,
       sum(amount) FILTER (WHERE kind = 'settle_manual') AS manual,
       sum(amount) FILTER (WHERE kind = 'release') AS released
FROM (
    SELECT CASE WHEN to_holder LIKE 'doubt:%' THEN to_holder ELSE from_holder END AS holder,
           kind, to_holder, amount
    FROM ledger
    WHERE budget_id = $1 AND (from_holder LIKE 'doubt:%' OR to_holder LIKE 'doubt:%')
) d
WHERE $2::text IS NULL OR holder = $2
GROUP BY holder
ORDER BY holder
"""

_OPEN: Final = """
SELECT DISTINCT budget_id FROM (
    SELECT budget_id, CASE WHEN to_holder LIKE 'doubt:%' THEN to_holder ELSE from_holder END AS holder,
           kind
    FROM ledger
    WHERE from_holder LIKE 'doubt:%' OR to_holder LIKE 'doubt:%'
) d
GROUP BY budget_id, holder
HAVING NOT bool_or(kind = 'release')
ORDER BY budget_id
"""

_INSERT_LEDGER: Final = """
INSERT INTO ledger (budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason, gen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


def _doubt_row(rec: Any) -> DoubtRow:
    return DoubtRow(
        holder=str(rec["holder"]),
        balance=int(rec["balance"]),
        booked=int(rec["booked"]),
        manual=None if rec["manual"] is None else int(rec["manual"]),
        released=None if rec["released"] is None else int(rec["released"]),
    )


async def doubt_rows(conn: Any, budget_id: str, holder: str | None = None) -> list[DoubtRow]:
    return [_doubt_row(r) for r in await conn.fetch(_DOUBT, budget_id, holder)]


async def open_budgets(pool: Any) -> list[str]:
    return [str(r["budget_id"]) for r in await pool.fetch(_OPEN)]


async def _lock_gen(conn: Any, budget_id: str) -> int:
    gen = await conn.fetchval(
        "SELECT redis_gen FROM budgets WHERE budget_id = $1 FOR NO KEY UPDATE", budget_id
    )
    if gen is None:
        raise BudgetNotFound(budget_id)
    return int(gen)


async def _one(conn: Any, budget_id: str, holder: str) -> DoubtRow | None:
    rows = await doubt_rows(conn, budget_id, holder)
    return rows[0] if rows else None


async def book(
    pool: Any,
    budget_id: str,
    holder: str,
    delta: int,
    *,
    expect_booked: int,
    expect_balance: int,
    actor: str,
    reason: str,
) -> bool:
    """Book ``delta`` (signed) of the holder as consumed, in the current generation.

    False, writing nothing, unless the holder is still exactly as the caller planned from
    (``expect_booked``, ``expect_balance``), not settled by hand and not released.
    """
    if delta == 0 or abs(delta) > MAX_AMOUNT:
        raise InvalidArgument(f"cannot book {delta}")
    async with pool.acquire() as conn, conn.transaction():
        gen = await _lock_gen(conn, budget_id)
        row = await _one(conn, budget_id, holder)
        if (
            row is None
            or row.released is not None
            or row.manual is not None
            or (row.booked, row.balance) != (expect_booked, expect_balance)
        ):
            return False
        source, target = (holder, CONSUMED) if delta > 0 else (CONSUMED, holder)
        tid = f"settle:{budget_id}:{holder}:{uuid.uuid4().hex}"
        await conn.execute(
            _INSERT_LEDGER, budget_id, tid, "settle", source, target, abs(delta), actor, reason, gen
        )
        return True


async def release(
    pool: Any,
    budget_id: str,
    holder: str,
    transfer_id: str,
    amount: int,
    gen: int,
    actor: str,
    reason: str,
) -> RecordOutcome:
    """Release the holder's whole balance (``amount``) to main under ``transfer_id``, once.

    STALE if the budget is no longer in generation ``gen`` (the caller's pending record on main
    went with the rebuild); CONFLICT if the balance is not ``amount`` or it was released already.
    """
    validate.amount("amount", amount, allow_zero=True)
    async with pool.acquire() as conn, conn.transaction():
        current = await _lock_gen(conn, budget_id)
        prior = await conn.fetchrow(
            "SELECT kind, from_holder, to_holder, amount FROM ledger WHERE transfer_id = $1", transfer_id
        )
        if prior is not None:
            if prior["kind"] == "abort":
                return RecordOutcome.ABORTED
            same = (prior["kind"], prior["from_holder"], prior["amount"]) == ("release", holder, amount)
            return RecordOutcome.ALREADY_COMMITTED if same else RecordOutcome.CONFLICT
        if current != gen:
            return RecordOutcome.STALE
        row = await _one(conn, budget_id, holder)
        if row is None or row.released is not None or row.balance != amount:
            return RecordOutcome.CONFLICT
        await conn.execute(
            _INSERT_LEDGER, budget_id, transfer_id, "release", holder, "main", amount, actor, reason, gen
        )
        return RecordOutcome.COMMITTED


async def book_manual(
    pool: Any, budget_id: str, holder: str, consumed: int, actor: str, reason: str
) -> ManualBooking:
    """Book what an operator says the holder consumed; the caller then releases the rest.

    Raises HolderNotFound, InvalidArgument (more than is in doubt) or LedgerConflict (settled
    already, from the log or by hand with another amount). A repeat with the same amount returns
    the original booking (fresh=False), so a crashed Settle can be finished by repeating it.
    """
    validate.text("holder", holder, max_len=validate.MAX_HOLDER)
    validate.amount("consumed", consumed, allow_zero=True)
    async with pool.acquire() as conn, conn.transaction():
        gen = await _lock_gen(conn, budget_id)
        row = await _one(conn, budget_id, holder) if ledger_only(holder) else None
        if row is None:
            known = [r.holder for r in await doubt_rows(conn, budget_id) if r.released is None]
            raise HolderNotFound(budget_id, holder, known)
        if row.manual is not None:
            if row.manual != consumed:
                raise LedgerConflict(f"{holder} was settled by hand with consumed {row.manual}")
            remaining = 0 if row.released is not None else row.balance
            return ManualBooking(False, consumed, remaining, row.released)
        if row.released is not None:
            raise LedgerConflict(f"{holder} was already settled from the spend log")
        if consumed > row.balance:
            raise InvalidArgument(f"consumed {consumed} is more than {holder} has in doubt ({row.balance})")
        tid = f"settle_manual:{budget_id}:{holder}"
        await conn.execute(
            _INSERT_LEDGER, budget_id, tid, "settle_manual", holder, CONSUMED, consumed, actor, reason, gen
        )
        return ManualBooking(True, consumed, row.balance - consumed, None)
