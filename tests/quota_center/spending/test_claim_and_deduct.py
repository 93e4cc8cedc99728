"""The claim and the deduction in one EVALSHA on one Redis server (BucketStore.claim_and_deduct)."""

from __future__ import annotations

from devstack import RedisServer
from quota_center.buckets import keys
from quota_center.buckets.client import connect
from quota_center.buckets.store import BucketStore
from quota_center.holders import sub_holder


async def test_one_round_trip_claims_deducts_and_refuses_another_request(fresh_redis: RedisServer) -> None:
    redis = connect(fresh_redis.url)
    store = BucketStore(redis, retention_s=3600)
    try:
        assert store.one_server
        await store.init_bucket("b", sub_holder(0), 100, 1, "active")

        async def bound(request_id: str) -> object:
            return await redis.get(keys.claim_key(request_id))

        # (The first call loads the script and runs it again.)
        r = await store.claim_and_deduct("r1", "deduct|b|30", "b", 0, 30, 1)
        assert (r.status, r.value, r.gen) == ("OK", 30, 1)
        assert await bound("r1") == "deduct|b|30"
        assert 3500 < await redis.ttl(keys.claim_key("r1")) <= 3600
        # A retry: the claim is ours already; the record answers EXISTS.
        r = await store.claim_and_deduct("r1", "deduct|b|30", "b", 0, 30, 1)
        assert (r.status, r.value) == ("EXISTS", 30)
        # The same id for something else: refused before anything is touched.
        r = await store.claim_and_deduct("r1", "deduct|b|31", "b", 0, 31, 1)
        assert r.status == "UNCLAIMED"
        assert await bound("r1") == "deduct|b|30"
        assert await store.balance("b", sub_holder(0)) == 70

        # Scripts flushed (a restart): loaded again, and the call still counts once.
        fresh_redis.command("SCRIPT", "FLUSH")
        r = await store.claim_and_deduct("r2", "deduct|b|5", "b", 0, 5, 1)
        assert r.status == "OK"
        assert await bound("r2") == "deduct|b|5"
        assert await store.balance("b", sub_holder(0)) == 65
    finally:
        await redis.aclose()
