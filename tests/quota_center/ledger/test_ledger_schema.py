"""What PostgreSQL itself enforces, and the double-entry reading of the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from quota_center.ledger import LedgerEntry, LedgerStore, RecordOutcome
from quota_rules.limits import MAX_AMOUNT

pytestmark = pytest.mark.integration

NewBudget = Callable[..., Awaitable[str]]

_RAW_INSERT = """
INSERT INTO ledger (budget_id, transfer_id, kind, from_holder, to_holder, amount)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def test_ledger_rows_cannot_be_updated_deleted_or_truncated(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget(total=500)
    async with ledger.pool.acquire() as conn:
        for statement in (
            "UPDATE ledger SET amount = 1 WHERE budget_id = $1",
            "DELETE FROM ledger WHERE budget_id = $1",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(statement, budget_id)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("TRUNCATE ledger CASCADE")
    [row] = await ledger.entries(budget_id)
    assert row.entry.amount == 500


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 2**63 - 1, -1])
async def test_database_refuses_ledger_amounts_out_of_range(
    ledger: LedgerStore, new_budget: NewBudget, amount: int
) -> None:
    budget_id = await new_budget()
    with pytest.raises(asyncpg.CheckViolationError):
        await ledger.pool.execute(
            _RAW_INSERT, budget_id, f"raw:{uuid.uuid4().hex}", "grant", "main", "x", amount
        )
    await ledger.pool.execute(
        _RAW_INSERT, budget_id, f"raw:{uuid.uuid4().hex}", "grant", "main", "x", MAX_AMOUNT
    )


@pytest.mark.parametrize("total", [MAX_AMOUNT + 1, -1])
async def test_database_refuses_budget_totals_out_of_range(ledger: LedgerStore, total: int) -> None:
    budget_id = f"raw-{uuid.uuid4().hex}"
    with pytest.raises(asyncpg.CheckViolationError):
        await ledger.pool.execute(
            "INSERT INTO budgets (budget_id, unit, total, initial_total, sub_buckets)"
            " VALUES ($1, 'x', $2, 0, 1)",
            budget_id,
            total,
        )
    assert await ledger.get_budget(budget_id) is None


async def test_database_refuses_bad_rows_that_bypass_the_store(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget()
    tid = f"raw:{uuid.uuid4().hex}"
    cases = [
        ((budget_id, tid, "abort", "main", "main", 5), asyncpg.CheckViolationError),  # markers move 0
        ((budget_id, tid, "grant", "main", "main", 5), asyncpg.CheckViolationError),  # self-transfer
        ((budget_id, tid, "Bad Kind", "main", "x", 5), asyncpg.CheckViolationError),
        ((f"missing-{tid}", tid, "grant", "main", "x", 5), asyncpg.ForeignKeyViolationError),
        ((budget_id, f"create:{budget_id}", "grant", "main", "x", 5), asyncpg.UniqueViolationError),
    ]
    for args, error in cases:
        with pytest.raises(error):
            await ledger.pool.execute(_RAW_INSERT, *args)
    with pytest.raises(asyncpg.CheckViolationError):
        await ledger.pool.execute("UPDATE budgets SET state = 'deleted' WHERE budget_id = $1", budget_id)
    assert await ledger.statuses([tid]) == {}


async def test_holder_balances_follow_double_entry(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=1_000)
    await ledger.top_up(budget_id, "more", 500, 1)
    moves = [
        ("grant", "main", "sub:0", 300),
        ("grant", "main", "agent:eu-1", 200),
        ("release", "sub:0", "main", 50),
        ("consume", "sub:0", "consumed", 120),
        ("in_doubt", "agent:eu-1", "doubt:agent:eu-1", 200),
        ("settle", "doubt:agent:eu-1", "consumed", 80),
        ("settle", "doubt:agent:eu-1", "main", 120),
    ]
    for kind, src, dst, amount in moves:
        entry = LedgerEntry(budget_id, f"{kind}:{uuid.uuid4().hex}", kind, src, dst, amount, "t", "", 1)
        assert await ledger.record(entry) is RecordOutcome.COMMITTED
    assert await ledger.abort(budget_id, f"grant:{uuid.uuid4().hex}")
    await ledger.set_state(budget_id, "paused")

    balances = await ledger.holder_totals(budget_id)
    assert balances == {
        "external": -1_500,
        "main": 1_500 - 300 - 200 + 50 + 120,
        "sub:0": 300 - 50 - 120,
        "agent:eu-1": 0,
        "doubt:agent:eu-1": 0,
        "consumed": 200,
    }
    assert sum(balances.values()) == 0
    by_gen = await ledger.holder_balances(budget_id)
    assert by_gen == {(holder, 1): amount for holder, amount in balances.items()}

    totals = await ledger.totals(budget_id)
    assert totals is not None
    assert (totals.total, totals.external_in) == (1_500, 1_500)
    assert totals.rows == 2 + len(moves) + 2  # create, top-up, moves, abort, state
    assert await ledger.totals(f"missing-{uuid.uuid4().hex}") is None
    assert await ledger.holder_balances(f"missing-{uuid.uuid4().hex}") == {}


async def test_entries_page_in_commit_order(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=100)
    for i in range(5):
        entry = LedgerEntry(budget_id, f"g:{budget_id}:{i}", "grant", "main", f"sub:{i}", i + 1, "t", "", 1)
        assert await ledger.record(entry) is RecordOutcome.COMMITTED
    first = await ledger.entries(budget_id, limit=3)
    rest = await ledger.entries(budget_id, limit=10, after_seq=first[-1].seq)
    rows = first + rest
    assert [r.entry.kind for r in rows] == ["create"] + ["grant"] * 5
    assert [r.entry.amount for r in rows[1:]] == [1, 2, 3, 4, 5]
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 6
    assert all(r.created_at.tzinfo is not None for r in rows)
