"""Transfers through group commit: batching, idempotency, conflicts, aborts and failed batches."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from quota_center.ledger import (
    BudgetNotFound,
    InvalidAmount,
    InvalidArgument,
    LedgerEntry,
    LedgerStore,
    RecordOutcome,
    StoreClosed,
)
from quota_rules.limits import MAX_AMOUNT

pytestmark = pytest.mark.integration

NewBudget = Callable[..., Awaitable[str]]


def grant(
    budget_id: str, amount: int = 10, *, to: str = "sub:0", tid: str | None = None, gen: int = 1
) -> LedgerEntry:
    return LedgerEntry(
        budget_id=budget_id,
        transfer_id=tid or f"grant:{uuid.uuid4().hex}",
        kind="grant",
        from_holder="main",
        to_holder=to,
        amount=amount,
        actor="center",
        reason="refill",
        gen=gen,
    )


async def test_concurrent_records_are_group_committed(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=100_000)
    entries = [grant(budget_id, i + 1, to=f"sub:{i % 4}") for i in range(200)]
    batches_before, rows_before = ledger.batches_written, ledger.rows_written

    outcomes = await asyncio.gather(*(ledger.record(e) for e in entries))

    assert outcomes == [RecordOutcome.COMMITTED] * 200
    batches = ledger.batches_written - batches_before
    assert ledger.rows_written - rows_before == 200
    assert 1 <= batches < 200 / 4
    statuses = await ledger.statuses([e.transfer_id for e in entries])
    assert statuses == {e.transfer_id: "grant" for e in entries}
    balances = await ledger.holder_totals(budget_id)
    assert balances["main"] == 100_000 - sum(range(1, 201))
    assert sum(balances[f"sub:{k}"] for k in range(4)) == sum(range(1, 201))


async def test_batch_max_bounds_the_batch_size(database_url: str, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=10_000)
    store = await LedgerStore.open(database_url, max_size=2, batch_max=16, batch_wait_ms=50)
    try:
        outcomes = await asyncio.gather(*(store.record(grant(budget_id, 1)) for _ in range(64)))
        assert set(outcomes) == {RecordOutcome.COMMITTED}
        assert store.rows_written == 64
        assert store.batches_written >= 64 // 16
    finally:
        await store.close()


async def test_a_lone_record_is_not_held_back_for_long(database_url: str, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    store = await LedgerStore.open(database_url, max_size=2, batch_wait_ms=5)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await store.record(grant(budget_id)) is RecordOutcome.COMMITTED
        assert loop.time() - started < 1.0
        assert store.batches_written == 1
    finally:
        await store.close()


async def test_retry_is_already_committed_and_different_content_conflicts(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget()
    entry = grant(budget_id, 25)
    assert await ledger.record(entry) is RecordOutcome.COMMITTED
    # Actor and reason are not part of the movement: a retry from another replica still matches.
    retry = replace(entry, actor="replica-2", reason="retry")
    assert await ledger.record(retry) is RecordOutcome.ALREADY_COMMITTED
    changes: list[dict[str, Any]] = [
        {"amount": 26},
        {"to_holder": "sub:1"},
        {"kind": "release"},
        {"from_holder": "sub:9"},
    ]
    for change in changes:
        other = replace(entry, **change)
        assert await ledger.record(other) is RecordOutcome.CONFLICT, change
    other_budget = await new_budget()
    moved = replace(entry, budget_id=other_budget)
    assert await ledger.record(moved) is RecordOutcome.CONFLICT
    assert [r.entry.amount for r in await ledger.entries(budget_id) if r.entry.kind == "grant"] == [25]


async def test_duplicates_inside_one_batch_commit_once(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    entry = grant(budget_id, 5)
    different = replace(entry, amount=6)
    calls = [entry] * 10 + [different]
    batches_before = ledger.batches_written
    outcomes = await asyncio.gather(*(ledger.record(e) for e in calls))
    assert ledger.batches_written - batches_before == 1  # all in one batch: dedup is ours, not the DB's
    assert outcomes[0] is RecordOutcome.COMMITTED
    assert outcomes[1:10] == [RecordOutcome.ALREADY_COMMITTED] * 9
    assert outcomes[10] is RecordOutcome.CONFLICT
    assert (await ledger.holder_totals(budget_id))["sub:0"] == 5


async def test_abort_then_record_and_record_then_abort(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    late = grant(budget_id, 10)
    assert await ledger.abort(budget_id, late.transfer_id, "sweeper", "stale") is True
    assert await ledger.abort(budget_id, late.transfer_id, "sweeper", "again") is True
    assert await ledger.record(late) is RecordOutcome.ABORTED

    early = grant(budget_id, 10)
    assert await ledger.record(early) is RecordOutcome.COMMITTED
    assert await ledger.abort(budget_id, early.transfer_id) is False

    assert await ledger.statuses([late.transfer_id, early.transfer_id, "never-written"]) == {
        late.transfer_id: "abort",
        early.transfer_id: "grant",
    }
    # The abort moved nothing.
    assert (await ledger.holder_totals(budget_id))["sub:0"] == 10


@pytest.mark.parametrize("separate_stores", [False, True])
async def test_abort_racing_record_has_exactly_one_winner(
    ledger: LedgerStore, database_url: str, new_budget: NewBudget, separate_stores: bool
) -> None:
    budget_id = await new_budget(total=1_000_000)
    # Two stores means two writers and two transactions racing in PostgreSQL itself.
    sweeper = await LedgerStore.open(database_url, max_size=2) if separate_stores else ledger
    rng = random.Random(7)
    try:
        entries = [grant(budget_id, 1) for _ in range(60)]

        async def race(entry: LedgerEntry) -> tuple[RecordOutcome, bool]:
            calls: list[Awaitable[object]] = [
                ledger.record(entry),
                sweeper.abort(budget_id, entry.transfer_id, "sweeper", "stale"),
            ]
            if rng.random() < 0.5:
                record_outcome, aborted = await asyncio.gather(*calls)
            else:
                aborted, record_outcome = await asyncio.gather(*reversed(calls))
            assert isinstance(record_outcome, RecordOutcome)
            assert isinstance(aborted, bool)
            return record_outcome, aborted

        results = await asyncio.gather(*(race(e) for e in entries))
        statuses = await ledger.statuses([e.transfer_id for e in entries])
        for entry, (outcome, aborted) in zip(entries, results, strict=True):
            if outcome is RecordOutcome.COMMITTED:
                assert not aborted
                assert statuses[entry.transfer_id] == "grant"
            else:
                assert outcome is RecordOutcome.ABORTED
                assert aborted
                assert statuses[entry.transfer_id] == "abort"
        granted = sum(1 for outcome, _ in results if outcome is RecordOutcome.COMMITTED)
        assert (await ledger.holder_totals(budget_id)).get("sub:0", 0) == granted
    finally:
        if separate_stores:
            await sweeper.close()


async def test_unknown_budget_fails_only_its_own_call(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    good = [grant(budget_id, 1) for _ in range(5)]
    bad = grant(f"missing-{uuid.uuid4().hex}", 1)
    results = await asyncio.gather(*(ledger.record(e) for e in [*good, bad]), return_exceptions=True)
    assert results[:5] == [RecordOutcome.COMMITTED] * 5
    assert isinstance(results[5], BudgetNotFound)
    assert await ledger.statuses([bad.transfer_id]) == {}
    with pytest.raises(BudgetNotFound):
        await ledger.abort(bad.budget_id, bad.transfer_id)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"amount": MAX_AMOUNT + 1}, InvalidAmount),
        ({"amount": -1}, InvalidAmount),
        ({"amount": 1.0}, InvalidAmount),
        ({"amount": True}, InvalidAmount),
        ({"kind": "Grant!"}, InvalidArgument),
        ({"kind": "abort", "amount": 3}, InvalidAmount),
        ({"to_holder": "main"}, InvalidArgument),
        ({"transfer_id": ""}, InvalidArgument),
        ({"transfer_id": "x" * 1025}, InvalidArgument),
        ({"reason": "bad\x00"}, InvalidArgument),
        ({"actor": "\ud800"}, InvalidArgument),
    ],
)
async def test_bad_entries_are_refused_before_batching(
    ledger: LedgerStore, new_budget: NewBudget, change: dict[str, Any], error: type[Exception]
) -> None:
    budget_id = await new_budget()
    entry = replace(grant(budget_id), **change)
    batches_before = ledger.batches_written
    with pytest.raises(error):
        await ledger.record(entry)
    assert ledger.batches_written == batches_before
    assert [r.entry.kind for r in await ledger.entries(budget_id)] == ["create"]


async def test_a_failed_batch_fails_every_waiter_and_writes_nothing(schema_dsn: str) -> None:
    store = await LedgerStore.open(schema_dsn, max_size=2, batch_wait_ms=200)
    try:
        await store.create_budget("poisoned", unit="item", total=1_000, policy={}, sub_buckets=1)
        # A trigger in this private schema makes PostgreSQL refuse one row of the batch.
        await store.pool.execute(
            """
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'poison row' USING ERRCODE = 'check_violation'; END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON ledger FOR EACH ROW
                WHEN (NEW.transfer_id LIKE 'poison%') EXECUTE FUNCTION refuse_poison();
            """
        )
        good = [grant("poisoned", 1) for _ in range(20)]
        poison = grant("poisoned", 1, tid="poison-1")
        results = await asyncio.gather(*(store.record(e) for e in [*good, poison]), return_exceptions=True)
        assert all(isinstance(r, asyncpg.CheckViolationError) for r in results), results
        assert store.batches_failed == 1
        assert store.rows_written == 0
        assert await store.statuses([e.transfer_id for e in [*good, poison]]) == {}
        # The writer survives a failed batch, and the callers' retries succeed.
        assert await asyncio.gather(*(store.record(e) for e in good)) == [RecordOutcome.COMMITTED] * 20
        assert (await store.holder_totals("poisoned"))["sub:0"] == 20
    finally:
        await store.close()


async def test_close_flushes_queued_records_then_refuses(database_url: str, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    store = await LedgerStore.open(database_url, max_size=2, batch_max=10_000, batch_wait_ms=5_000)
    entries = [grant(budget_id, 1) for _ in range(30)]
    tasks = [asyncio.create_task(store.record(e)) for e in entries]
    await asyncio.sleep(0.05)  # queued, waiting for a batch that would close only after 5 s
    assert store.queued == 30
    started = asyncio.get_running_loop().time()
    await store.close()
    assert asyncio.get_running_loop().time() - started < 2.0
    assert [t.result() for t in tasks] == [RecordOutcome.COMMITTED] * 30
    with pytest.raises(StoreClosed):
        await store.record(grant(budget_id, 1))
    assert await store.ping() is False
    await store.close()  # idempotent

    reader = await LedgerStore.open(database_url, max_size=1)
    try:
        assert len(await reader.statuses([e.transfer_id for e in entries])) == 30
    finally:
        await reader.close()


async def test_caller_cancelled_while_queued_is_skipped(database_url: str, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    store = await LedgerStore.open(database_url, max_size=2, batch_wait_ms=300)
    try:
        dropped = grant(budget_id, 1)
        victim = asyncio.create_task(store.record(dropped))
        others = [asyncio.create_task(store.record(grant(budget_id, 1))) for _ in range(5)]
        await asyncio.sleep(0.02)  # all six are queued; the batch closes only after 300 ms
        assert store.queued == 6
        victim.cancel()
        assert await asyncio.gather(*others) == [RecordOutcome.COMMITTED] * 5
        with pytest.raises(asyncio.CancelledError):
            await victim
        # Nobody waits for it any more, so it was never written: a sweeper may abort it safely.
        assert await store.statuses([dropped.transfer_id]) == {}
        assert store.rows_written == 5
    finally:
        await store.close()


async def test_two_writers_recording_the_same_ids_commit_each_once(
    ledger: LedgerStore, database_url: str, new_budget: NewBudget, caplog: pytest.LogCaptureFixture
) -> None:
    budget_id = await new_budget(total=1_000_000)
    other = await LedgerStore.open(database_url, max_size=2)
    try:
        entries = [grant(budget_id, 1, to=f"sub:{i % 3}") for i in range(150)]
        # Opposite orders: without a common lock order the two batches would deadlock.
        mine, theirs = await asyncio.gather(
            asyncio.gather(*(ledger.record(e) for e in entries)),
            asyncio.gather(*(other.record(e) for e in reversed(entries))),
        )
        for a, b in zip(mine, reversed(theirs), strict=True):
            assert {a, b} == {RecordOutcome.COMMITTED, RecordOutcome.ALREADY_COMMITTED}
        assert (await ledger.holder_totals(budget_id))["main"] == 1_000_000 - 150
        assert "lock race" not in caplog.text  # sorted ids: the batches never deadlocked
    finally:
        await other.close()
