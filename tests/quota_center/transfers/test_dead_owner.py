"""A center gone in the middle of a transfer (killed in the end game, say): the center that comes
up after it resolves that transfer at once, not after QUOTA_CENTER_TRANSFER_STALE_MS, since no
center alive was running when the transfer began."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from devstack import RedisServer
from quota_center.buckets.store import BucketStore
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.store import LedgerStore
from quota_center.transfers.protocol import new_transfer_id, now_ms
from tests.helpers.calls import OK, assert_balanced, create, deduct
from tests.helpers.center import CenterThread, Client, center_settings


async def test_the_next_center_resolves_a_dead_center_s_transfer_at_once(
    own_database: str, fresh_redis: RedisServer, budget_id: str
) -> None:
    slow_sweep = {"transfer_stale_ms": 60_000, "sweep_interval_ms": 100}
    first = CenterThread(center_settings(fresh_redis.url, own_database, **slow_sweep)).start()
    client = Client(first.target)
    await create(client, budget_id, 1_000, sub_buckets=2)
    await client.close()
    # The first center takes 800 from main for sub-bucket 0 and dies before the ledger write.
    redis = Redis.from_url(fresh_redis.url, decode_responses=True)
    ledger = await LedgerStore.open(own_database, batch_wait_ms=0)
    buckets = BucketStore(redis, 3600)
    try:
        gen = (await ledger.get_budget(budget_id)).redis_gen  # type: ignore[union-attr]
        tid = new_transfer_id(budget_id)
        # As the center does before any take: the budget marked active, so the sweepers look at it.
        assert first.center is not None
        await redis.zadd(first.center.expiry.activity.active_key, {budget_id: now_ms()})
        took = await buckets.take(budget_id, MAIN, tid, 800, "exact", gen, sub_holder(0), now_ms())
        assert took.status == "OK"
        first.stop()
        await asyncio.sleep(1.0)  # a restart takes at least this; clocks may differ by half of it

        second = CenterThread(center_settings(fresh_redis.url, own_database, **slow_sweep)).start()
        client = Client(second.target)
        try:
            for _ in range(60):  # 3 s: far less than the 60 s after which a transfer is stale
                view = await buckets.read(budget_id, MAIN)
                if view is not None and not view.pending:
                    break
                await asyncio.sleep(0.05)
            assert view is not None
            assert (view.balance, view.pending) == (1_000, ()), view
            done = await deduct(client, budget_id, f"{budget_id}-big", 900)
            assert (done.code, done.amount) == (OK, 900)
            await assert_balanced(client, budget_id)
        finally:
            await client.close()
            second.stop()
    finally:
        await ledger.close()
        await redis.aclose()
