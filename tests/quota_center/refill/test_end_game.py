"""The end game at the center (promise 3): the last unit is issuable, whatever the fragmentation."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
from redis.asyncio import Redis

from quota.v1 import common_pb2 as pb
from quota_center.buckets.store import BucketStore
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.models import LedgerEntry, RecordOutcome
from quota_center.ledger.store import LedgerStore
from quota_center.transfers.protocol import new_transfer_id, now_ms
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import Client


async def test_awkward_total_over_8_sub_buckets_drains_to_exactly_zero(
    client: Client, budget_id: str
) -> None:
    """Concurrent random-size deductions; a refused worker halves its amount down to one unit."""
    total = 10_007
    await create(client, budget_id, total, sub_buckets=8, min_slice=5, max_slice=400)
    rng = random.Random(10_007)
    granted: list[tuple[float, int]] = []  # (when the request was sent, amount) of each OK
    refusals: list[tuple[float, int]] = []  # (when the refusal arrived, amount)

    async def worker(w: int) -> None:
        amount, i = rng.randint(1, 90), 0
        while amount >= 1:
            i += 1
            sent = time.monotonic()
            r = await deduct(client, budget_id, f"{budget_id}-{w}-{i}", amount)
            if r.code == OK:
                granted.append((sent, amount))
                amount = rng.randint(1, 90)
            else:
                assert r.code == INSUFFICIENT, r.message
                refusals.append((time.monotonic(), amount))
                amount //= 2

    await asyncio.gather(*(worker(w) for w in range(16)))
    b = await get(client, budget_id)
    assert b.consumed == sum(a for _, a in granted) == total
    assert (b.available, b.in_doubt) == (0, 0)
    # A refusal was false if even counting every deduction sent before its answer came back,
    # the budget still had its amount left.
    for answered, amount in refusals:
        could_have_spent = sum(a for sent, a in granted if sent < answered)
        assert total - could_have_spent < amount, (amount, total - could_have_spent)
    await assert_balanced(client, budget_id)


async def _spread(redis_url: str, database_url: str, budget_id: str, pieces: int, piece: int) -> None:
    """Move ``piece`` units from main into each of ``pieces`` sub-buckets, as past refills would have."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    ledger = await LedgerStore.open(database_url, batch_wait_ms=0)
    buckets = BucketStore(redis, 3600)
    try:
        gen = (await ledger.get_budget(budget_id)).redis_gen  # type: ignore[union-attr]
        for k in range(pieces):
            tid, sub = new_transfer_id(budget_id), sub_holder(k)
            assert (
                await buckets.take(budget_id, MAIN, tid, piece, "exact", gen, sub, now_ms())
            ).status == "OK"
            entry = LedgerEntry(budget_id, tid, "refill", MAIN, sub, piece, "test", "", gen)
            assert await ledger.record(entry) is RecordOutcome.COMMITTED
            assert (await buckets.credit(budget_id, sub, tid, piece, gen)).status == "OK"
            await buckets.clear(budget_id, MAIN, tid)
    finally:
        await ledger.close()
        await redis.aclose()


async def test_fragments_thinner_than_the_request_are_merged(
    client: Client, budget_id: str, redis_url: str, database_url: str
) -> None:
    """3.00 left as 0.30 in each of ten sub-buckets, and a request for 1.00: it is served."""
    await create(client, budget_id, 300, sub_buckets=10)
    await _spread(redis_url, database_url, budget_id, pieces=10, piece=30)
    b = await get(client, budget_id)
    assert (b.main, b.held) == (0, 300)
    assert (await deduct(client, budget_id, f"{budget_id}-big", 100)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-rest", 200)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-one-more", 1)).code == INSUFFICIENT
    assert (await get(client, budget_id)).consumed == 300
    await assert_balanced(client, budget_id)


async def _ledger_rows(database_url: str, budget_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger WHERE budget_id = $1", budget_id))
    finally:
        await conn.close()


async def test_central_mode_costs_one_ledger_row_for_the_whole_end_game_and_none_per_refusal(
    client: Client, budget_id: str, database_url: str
) -> None:
    total = 500
    # A central threshold above the total keeps the budget in central mode from the start.
    await create(client, budget_id, total, sub_buckets=4, min_slice=50, central_threshold=total + 1)
    assert (await get(client, budget_id)).mode == pb.MODE_CENTRAL
    before = await _ledger_rows(database_url, budget_id)
    results = await asyncio.gather(*(deduct(client, budget_id, f"{budget_id}-{i}", 7) for i in range(100)))
    successes = sum(r.code == OK for r in results)
    assert successes == total // 7
    # One row: everything merged into the pool at once; each deduction is then one Lua call.
    assert await _ledger_rows(database_url, budget_id) - before == 1
    refused_more = [await deduct(client, budget_id, f"{budget_id}-late-{i}", 7) for i in range(20)]
    assert {r.code for r in refused_more} == {INSUFFICIENT}
    assert await _ledger_rows(database_url, budget_id) - before == 1
    # The last 3 units are still issuable, from whichever sub-bucket the request lands on.
    assert (await deduct(client, budget_id, f"{budget_id}-last", total % 7)).code == OK
    assert (await get(client, budget_id)).available == 0
    await assert_balanced(client, budget_id)


async def test_normal_mode_needs_few_ledger_rows_and_a_top_up_leaves_central_mode(
    client: Client, budget_id: str, database_url: str
) -> None:
    await create(client, budget_id, 1_000_000, sub_buckets=4, min_slice=1_000, max_slice=20_000)
    before = await _ledger_rows(database_url, budget_id)
    for batch in range(10):
        await asyncio.gather(*(deduct(client, budget_id, f"{budget_id}-{batch}-{i}", 10) for i in range(100)))
    rows = await _ledger_rows(database_url, budget_id) - before
    assert rows <= 20, f"{rows} ledger rows for 1000 deductions in normal mode"
    assert (await get(client, budget_id)).mode == pb.MODE_NORMAL

    small = f"{budget_id}-s"
    await create(client, small, 100, sub_buckets=4, min_slice=10, max_slice=50)
    assert (await deduct(client, small, f"{small}-1", 60)).code == OK
    assert (await get(client, small)).mode == pb.MODE_CENTRAL  # 40 free < one max slice
    from quota.v1 import admin_pb2 as apb

    await client.admin.TopUp(apb.TopUpRequest(budget_id=small, request_id="t1", amount=10_000))
    assert (await get(client, small)).mode == pb.MODE_NORMAL
    assert (await deduct(client, small, f"{small}-2", 5_000)).code == OK
    await assert_balanced(client, small)


async def test_returns_in_the_end_game_are_spendable_again(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 100, sub_buckets=5)
    assert (await deduct(client, budget_id, f"{budget_id}-a", 100)).code == OK
    for i in range(5):  # refunds land in the sub-bucket of "-a": fragments for others to merge
        assert (await refund(client, budget_id, f"{budget_id}-r{i}", f"{budget_id}-a", 10)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-b", 50)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-c", 1)).code == INSUFFICIENT
    await assert_balanced(client, budget_id)
