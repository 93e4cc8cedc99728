"""The seen filters (quota_center/buckets/seen.py, lua/seen_lib.lua) on a real Redis: every id
added is found on every day kept, through the growth of a day's bitmaps, and on no day after;
ids never added are rarely taken for seen; memory follows what was added."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from quota_center.buckets.client import connect
from quota_center.buckets.scripts import RedisClient, Scripts
from quota_center.buckets.seen import SHARDS, Seen, place
from quota_center.clock import DAY_S, Clock

RETENTION_S = 7 * DAY_S
BASE = 32  # small first bitmaps, so that a few thousand ids make a day grow several times


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    client = connect(redis_url)
    yield client
    await client.aclose()


def _seen(redis: RedisClient, clock: Clock) -> Seen:
    """Filters of a ledger of their own, used for the first time (every shard marked complete)."""
    seen = Seen(redis, Scripts(redis), f"t{secrets.token_hex(6)}", RETENTION_S, clock, base=BASE)
    noted: list[bool] = []

    async def started() -> bool:
        return bool(noted)

    async def note_started() -> None:
        noted.append(True)

    seen.started, seen.note_started = started, note_started
    return seen


async def test_an_added_id_is_found_on_every_day_kept_and_the_bitmaps_grow(redis: RedisClient) -> None:
    clock = Clock()
    seen = _seen(redis, clock)
    added = [f"id-{secrets.token_hex(8)}" for _ in range(1_200)]
    await asyncio.gather(*(seen.check(i, add=True) for i in added))
    bitmaps = [k async for k in redis.scan_iter(match=f"quota:seen:{{{seen.ledger_id}:*", count=10_000)]
    # Each shard's day has its counter and bitmaps of 32, 128, 512... ids: ~75 ids take two.
    assert len(bitmaps) >= SHARDS * 3, sorted(bitmaps)[:10]
    for offset_days in range(seen.days):
        clock.offset_s = offset_days * DAY_S
        found = await asyncio.gather(*(seen.check(i, add=False) for i in added))
        missing = [i for i, f in zip(added, found, strict=True) if not f]
        assert missing == [], f"day +{offset_days}: {len(missing)} added ids not found"
    clock.offset_s = seen.days * DAY_S  # the day they were added is no longer kept
    assert not any(await asyncio.gather(*(seen.check(i, add=False) for i in added)))


async def test_ids_never_added_are_rarely_taken_for_seen(redis: RedisClient) -> None:
    seen = _seen(redis, Clock())
    await asyncio.gather(*(seen.check(f"in-{n}", add=True) for n in range(3_000)))
    false = sum(await asyncio.gather(*(seen.check(f"out-{n}", add=False) for n in range(3_000))))
    # 15 bits and 10 tests per id: about 1 in 1,400 for a full bitmap, a few bitmaps per shard.
    assert false <= 30, f"{false} of 3,000 never added were taken for seen"


async def test_memory_follows_the_ids_added(redis: RedisClient) -> None:
    quiet, busy = _seen(redis, Clock()), _seen(redis, Clock())
    await asyncio.gather(*(quiet.check(f"q-{n}", add=True) for n in range(50)))
    await asyncio.gather(*(busy.check(f"b-{n}", add=True) for n in range(5_000)))

    async def used(seen: Seen) -> int:
        total = 0
        async for key in redis.scan_iter(match=f"quota:seen:{{{seen.ledger_id}:*", count=10_000):
            total += int(await redis.memory_usage(key) or 0)
        return total

    q, b = await used(quiet), await used(busy)
    assert q < b / 5, (q, b)  # 100 times fewer ids: the quiet one has only its first small bitmaps
    # 15 bits an id when full; a day's last bitmap is at most 4 times larger than what it holds.
    assert b / 5_000 < 15 / 8 * 4 + 8, b / 5_000


async def test_a_shard_redis_lost_answers_maybe_until_its_filters_hold_the_whole_retention(
    redis: RedisClient,
) -> None:
    clock = Clock()
    seen = _seen(redis, clock)
    ids = [f"l-{n}" for n in range(400)]
    await asyncio.gather(*(seen.check(i, add=True) for i in ids))
    lost = place(ids[0]).shard
    async for key in redis.scan_iter(match=f"{seen.prefix(lost)}*", count=10_000):
        await redis.delete(key)
    in_lost = [i for i in ids if place(i).shard == lost]
    never = [f"n-{n}" for n in range(2_000) if place(f"n-{n}").shard == lost][:50]
    # Its ids and ids never served alike: all "maybe" (the spend log decides), for the days kept.
    assert all([await seen.check(i, add=False) for i in in_lost + never])
    assert int(await redis.get(seen.mark_key(lost)) or -1) == clock.day()
    clock.offset_s = (seen.days - 1) * DAY_S
    assert all([await seen.check(i, add=False) for i in never])
    clock.offset_s = seen.days * DAY_S  # the day of the loss has left the days kept
    assert sum([await seen.check(i, add=False) for i in never]) <= 2
    # The other shards were never in doubt.
    clock.offset_s = 0
    others = [f"n-{n}" for n in range(400) if place(f"n-{n}").shard != lost]
    assert sum([await seen.check(i, add=False) for i in others]) <= 2
