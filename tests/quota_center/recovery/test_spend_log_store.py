"""The PostgreSQL side: in-doubt rows at the bump, the settlement rows (each at most once, whoever
races), the spend log and the registry of centers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from quota_center.ledger import InvalidArgument, LedgerConflict, LedgerEntry, LedgerStore, RecordOutcome
from quota_center.ledger.spend_log import HolderNotFound, SpendEntry
from quota_center.recovery.writebehind import WriteBehind


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[LedgerStore]:
    store = await LedgerStore.open(database_url, max_size=4)
    yield store
    await store.close()


async def budget(ledger: LedgerStore, sub_buckets: int = 3) -> str:
    budget_id = f"s-{uuid.uuid4().hex[:12]}"
    await ledger.create_budget(budget_id, unit="item", total=1_000, policy={}, sub_buckets=sub_buckets)
    return budget_id


async def move(ledger: LedgerStore, budget_id: str, source: str, target: str, amount: int, gen: int) -> None:
    tid = f"t:{uuid.uuid4().hex}"
    entry = LedgerEntry(budget_id, tid, "refill", source, target, amount, "t", "", gen)
    assert await ledger.record(entry) is RecordOutcome.COMMITTED


async def test_the_bump_moves_each_lost_sub_bucket_to_a_named_in_doubt_holder(ledger: LedgerStore) -> None:
    budget_id = await budget(ledger)
    await move(ledger, budget_id, "main", "sub:0", 300, 1)
    await move(ledger, budget_id, "main", "sub:1", 100, 1)
    await move(ledger, budget_id, "sub:1", "main", 150, 1)  # it gave back a refund it held: -50
    await ledger.bump_generation(budget_id, 1)
    await move(ledger, budget_id, "main", "sub:2", 40, 2)
    await ledger.bump_generation(budget_id, 2)

    balances = {k: v for k, v in (await ledger.holder_balances(budget_id)).items() if k[0].startswith("sub:")}
    assert set(balances.values()) == {0}  # nothing left in the lost generations' sub-buckets
    doubt = {r.holder: r.balance for r in await ledger.doubt_holders(budget_id)}
    assert doubt == {
        "doubt:sub:0@1": 300,
        "doubt:sub:1@1": -50,
        "doubt:sub:2@1": 0,
        "doubt:sub:0@2": 0,
        "doubt:sub:1@2": 0,
        "doubt:sub:2@2": 40,
    }
    rows = [r.entry for r in await ledger.entries(budget_id) if r.entry.kind == "in_doubt"]
    assert {(e.transfer_id, e.gen) for e in rows} >= {
        (f"in_doubt:{budget_id}:sub:0:1", 1),
        (f"in_doubt:{budget_id}:sub:2:2", 2),
    }
    assert budget_id in await ledger.budgets_in_doubt()


async def test_settlement_rows_are_written_once_whoever_races(ledger: LedgerStore) -> None:
    budget_id = await budget(ledger, sub_buckets=1)
    await move(ledger, budget_id, "main", "sub:0", 300, 1)
    await ledger.bump_generation(budget_id, 1)
    holder = "doubt:sub:0@1"

    assert await ledger.book_in_doubt(budget_id, holder, 120, expect_booked=0, expect_balance=300)
    # A second settler that planned from the same state books nothing.
    assert not await ledger.book_in_doubt(budget_id, holder, 120, expect_booked=0, expect_balance=300)
    assert await ledger.book_in_doubt(budget_id, holder, -20, expect_booked=120, expect_balance=180)
    [row] = await ledger.doubt_holders(budget_id)
    assert (row.balance, row.booked, row.released) == (200, 100, None)

    tid = f"release:{uuid.uuid4().hex}"
    assert await ledger.release_in_doubt(budget_id, holder, tid, 200, 1) is RecordOutcome.STALE
    assert await ledger.release_in_doubt(budget_id, holder, tid, 199, 2) is RecordOutcome.CONFLICT
    assert await ledger.release_in_doubt(budget_id, holder, tid, 200, 2) is RecordOutcome.COMMITTED
    assert await ledger.release_in_doubt(budget_id, holder, tid, 200, 2) is RecordOutcome.ALREADY_COMMITTED
    other = f"release:{uuid.uuid4().hex}"
    assert await ledger.release_in_doubt(budget_id, holder, other, 0, 2) is RecordOutcome.CONFLICT
    # A release whose pending record the sweeper aborted loses to the abort marker.
    aborted = f"release:{uuid.uuid4().hex}"
    assert await ledger.abort(budget_id, aborted)
    assert await ledger.release_in_doubt(budget_id, holder, aborted, 0, 2) is RecordOutcome.ABORTED
    assert not await ledger.book_in_doubt(budget_id, holder, 1, expect_booked=100, expect_balance=0)
    totals = await ledger.holder_totals(budget_id)
    assert (totals["consumed"], totals["main"], totals[holder]) == (100, 900, 0)
    assert budget_id not in await ledger.budgets_in_doubt()


async def test_settling_by_hand(ledger: LedgerStore) -> None:
    budget_id = await budget(ledger, sub_buckets=2)
    await move(ledger, budget_id, "main", "sub:0", 300, 1)
    await ledger.bump_generation(budget_id, 1)
    holder = "doubt:sub:0@1"
    with pytest.raises(HolderNotFound, match=r"doubt:sub:0@1, doubt:sub:1@1"):
        await ledger.settle_by_hand(budget_id, "doubt:sub:5@1", 0)
    with pytest.raises(InvalidArgument, match="more than"):
        await ledger.settle_by_hand(budget_id, holder, 301)
    first = await ledger.settle_by_hand(budget_id, holder, 80, "oncall", "ticket 7")
    assert (first.fresh, first.consumed, first.remaining, first.released) == (True, 80, 220, None)
    again = await ledger.settle_by_hand(budget_id, holder, 80)
    assert (again.fresh, again.remaining) == (False, 220)
    with pytest.raises(LedgerConflict):
        await ledger.settle_by_hand(budget_id, holder, 81)
    # The automatic settlement leaves a holder an operator settled alone.
    assert not await ledger.book_in_doubt(budget_id, holder, 10, expect_booked=0, expect_balance=220)
    tid = f"release:{uuid.uuid4().hex}"
    assert await ledger.release_in_doubt(budget_id, holder, tid, 220, 2) is RecordOutcome.COMMITTED
    done = await ledger.settle_by_hand(budget_id, holder, 80)
    assert (done.fresh, done.remaining, done.released) == (False, 0, 220)


async def test_the_log_keeps_the_first_entry_of_a_request_id(ledger: LedgerStore) -> None:
    budget_id = await budget(ledger)
    d = f"{budget_id}-d"
    entries = [
        SpendEntry(d, budget_id, 1, "sub:0", "deduct", 100),
        SpendEntry(f"{budget_id}-r1", budget_id, 1, "sub:0", "return", 30, d),
        SpendEntry(f"{budget_id}-r2", budget_id, 2, "sub:1", "return", 20, d),
        SpendEntry(f"{budget_id}-x", budget_id, 1, "sub:0", "deduct", 7),
    ]
    await ledger.log_spends(entries)
    await ledger.log_spends([SpendEntry(d, budget_id, 1, "sub:0", "deduct", 999)])  # a replay
    assert await ledger.spend_lookup(d) == entries[0]
    assert await ledger.spend_lookup(f"{budget_id}-nope") is None
    assert await ledger.logged_returns(d) == 50
    assert await ledger.logged_consumption(budget_id, 1, "sub:0") == 100 - 30 + 7
    assert await ledger.logged_consumption(budget_id, 2, "sub:1") == -20


async def test_a_center_reports_how_far_it_has_written_and_its_clean_stop(ledger: LedgerStore) -> None:
    log = WriteBehind(ledger, interval_ms=10, heartbeat_ms=20, name="test-center")
    await log.start()
    began = await ledger.db_now()
    # The watermark is a lower bound: the database instant of a cycle's start, less that
    # cycle's round trip; so it passes `began` within a few cycles after it, not necessarily one.
    for _ in range(100):
        await log.flushed_past(time.monotonic())
        rows = {
            r.instance_id: r for r in await ledger.running_instances(seen_since=began, started_before=began)
        }
        mine = rows[log.instance_id]
        if mine.flushed_until >= began:
            break
    assert mine.name == "test-center"
    assert mine.flushed_until >= began  # every operation before `began` is written
    assert mine.stopped_at is None
    await log.close()
    after = await ledger.db_now()
    running = await ledger.running_instances(seen_since=began, started_before=after)
    assert log.instance_id not in [r.instance_id for r in running]
