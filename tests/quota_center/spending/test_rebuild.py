"""Reservations and the loss of Redis: a rebuild resets the sub-buckets (what they held, reserved
units included, turns in doubt), so a reservation made before it is dropped, never released on
top of that, never made in a generation about to be reset; and a confirm reaches the spend log
that settles the lost generation."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from quota.v1 import common_pb2 as pb
from quota_center.buckets import keys
from quota_center.holders import sub_holder
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import OK, assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.reservations import UNKNOWN, cancel, confirm, reserve
from tests.quota_center.spending.conftest import Local

MINUTE = 60_000


def _rebuild(center: CenterThread, budget_id: str) -> bool:
    running = center.center
    assert running is not None
    return bool(center.call(lambda: running.recovery.rebuild(budget_id)))


async def test_a_reservation_caught_in_a_rebuild_is_dropped_not_released(
    client: Client, budget_id: str, center: CenterThread, redis_url: str, local: Local
) -> None:
    """Main vanished from Redis; the surviving reservation records must not release their
    units a second time (they are in doubt, and the settlement decides what becomes of them)."""
    await create(client, budget_id, 1_000)
    rid, swept = f"{budget_id}-r", f"{budget_id}-swept"
    r = await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)
    assert r.code == OK
    assert (await reserve(client, budget_id, swept, 200, ttl_ms=MINUTE)).code == OK
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.delete(keys.main_keys(budget_id).state)
    await redis.aclose()
    assert _rebuild(center, budget_id)

    async def check() -> None:
        b = await get(client, budget_id)
        assert (b.reserved, b.consumed) == (0, 0)
        # What each lost sub-bucket held (300 and 200) is in doubt until the settlement releases it
        # to main, one holder at a time.
        assert b.in_doubt in (0, 200, 300, 500)
        assert b.available + b.in_doubt == 1_000
        await assert_balanced(client, budget_id)

    await check()
    gone = await confirm(client, budget_id, rid, 100)
    assert gone.code == UNKNOWN
    assert "rebuilt" in gone.message
    assert (await cancel(client, budget_id, rid)).code == UNKNOWN
    await check()
    local.clock.at = r.expires_at_ms + MINUTE
    assert await local.expiry.expire_budget(budget_id) == 0  # dropped, not released
    assert (await confirm(client, budget_id, swept, 100)).code == UNKNOWN
    retry = await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)  # the original answer
    assert (retry.code, retry.expires_at_ms) == (pb.RESULT_CODE_EXISTS, r.expires_at_ms)
    await check()


async def test_a_reserve_is_not_served_in_a_generation_the_rebuild_resets(
    client: Client, budget_id: str, center: CenterThread, redis_url: str
) -> None:
    """A sub-bucket still in the old generation (the rebuild has not reset it yet) refuses the
    reservation (STALE); the center rebuilds and serves it in the current generation."""
    await create(client, budget_id, 1_000, sub_buckets=2)
    rid = f"{budget_id}-r"
    index = sub_bucket_for(rid, 2)
    sub = keys.sub_keys(budget_id, index)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        old = await redis.hget(sub.state, "gen")
        await redis.delete(keys.main_keys(budget_id).state)
        assert _rebuild(center, budget_id)
        assert await redis.hget(sub.state, "gen") != old
        await redis.hset(sub.state, "gen", str(old))  # as if its reset had not happened yet
        r = await reserve(client, budget_id, rid, 100, ttl_ms=MINUTE)
        assert r.code == OK
        bucket_gen = await redis.hget(sub.state, "gen")
        assert bucket_gen != old
        assert await redis.hget(sub.request(rid), "gen") == bucket_gen
    finally:
        await redis.aclose()
    b = await get(client, budget_id)
    assert b.reserved == 100
    c = await confirm(client, budget_id, rid, 100)
    assert (c.code, c.amount) == (OK, 100)
    await assert_balanced(client, budget_id)


async def test_a_confirm_reaches_the_spend_log_as_a_deduction(
    client: Client, budget_id: str, database_url: str
) -> None:
    await create(client, budget_id, 1_000)
    rid, never = f"{budget_id}-r", f"{budget_id}-cancelled"
    assert (await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)).code == OK
    assert (await reserve(client, budget_id, never, 50, ttl_ms=MINUTE)).code == OK
    assert (await confirm(client, budget_id, rid, 120)).code == OK
    assert (await cancel(client, budget_id, never)).code == OK
    conn = await asyncpg.connect(database_url)
    try:
        row = None
        for _ in range(100):  # written behind, within the flush interval
            row = await conn.fetchrow(
                "SELECT budget_id, holder, kind, amount FROM spend_log WHERE request_id = $1", rid
            )
            if row is not None:
                break
            await asyncio.sleep(0.02)
        assert row is not None, "the confirm was not logged"
        holder = sub_holder(sub_bucket_for(rid, 4))
        assert tuple(row) == (budget_id, holder, "deduct", 120)
        # A cancel consumes nothing but is logged as such (its retry after a loss is answered from
        # it); the settlement counts deductions and returns only.
        for _ in range(100):
            cancelled = await conn.fetchrow("SELECT kind, amount FROM spend_log WHERE request_id = $1", never)
            if cancelled is not None:
                break
            await asyncio.sleep(0.02)
        assert cancelled is not None
        assert tuple(cancelled) == ("cancel", 50)
    finally:
        await conn.close()
