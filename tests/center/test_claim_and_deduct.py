"""The claim and the deduction in one round trip on one Redis server (BucketStore.claim_and_deduct)."""

from __future__ import annotations

from harness import RedisServer

from quota_center import keys
from quota_center.buckets.client import connect
from quota_center.buckets.store import BucketStore


async def test_one_round_trip_claims_deducts_and_refuses_another_request(fresh_redis: RedisServer) -> None:
    redis = connect(fresh_redis.url)
    store = BucketStore(redis, retention_s=3600)
    try:
        assert store.one_server
        await store.init_bucket("b", keys.sub_holder(0), 100, 1, "active")

        # (The first call loads the script and repeats the pipeline: the claim it finds is its own.)
        previous, r = await store.claim_and_deduct("r1", "deduct|b|30", "b", 0, 30, 1)
        assert previous in (None, "deduct|b|30")
        assert (r.status, r.value, r.gen) == ("OK", 30, 1)
        # A retry: the claim is ours already; the record answers EXISTS.
        previous, r = await store.claim_and_deduct("r1", "deduct|b|30", "b", 0, 30, 1)
        assert (previous, r.status, r.value) == ("deduct|b|30", "EXISTS", 30)
        # The same id for something else: refused before anything is touched.
        previous, r = await store.claim_and_deduct("r1", "deduct|b|31", "b", 0, 31, 1)
        assert (previous, r.status) == ("deduct|b|30", "UNCLAIMED")
        assert await store.balance("b", keys.sub_holder(0)) == 70

        # Scripts flushed (a restart): loaded again, and the call still counts once.
        fresh_redis.command("SCRIPT", "FLUSH")
        previous, r = await store.claim_and_deduct("r2", "deduct|b|5", "b", 0, 5, 1)
        assert previous in (None, "deduct|b|5")
        assert r.status == "OK"
        assert await store.balance("b", keys.sub_holder(0)) == 65
    finally:
        await redis.aclose()
