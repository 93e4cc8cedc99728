"""A Redis written in the first key layout is moved to the current one when a center starts:
balances, request records (retries), reservations and agents' holdings carry on; a tag two
budgets shared stops the start, naming it."""

from __future__ import annotations

import secrets

import pytest
from redis.asyncio import Redis

from devstack.redis_server import RedisServer
from quota_center.buckets import keys
from quota_center.buckets.keys import KeyOwner, parse_key
from quota_center.buckets.layout import SharedTag, migrate, plan
from quota_center.holders import MAIN
from tests.helpers.calls import EXISTS, OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.reservations import confirm, reserve
from tests.helpers.session_stream import Stream, usage


def first_layout(owner: KeyOwner) -> str:
    """The key ``owner`` had in the first layout."""
    if owner.holder == MAIN:
        tag = "{b:" + owner.budget + "}"
    elif owner.holder.startswith("sub:"):
        tag = "{b:" + owner.budget + ":" + owner.holder[4:] + "}"
    else:
        tag = "{b:" + owner.budget + ":a:" + owner.holder[6:] + "}"
    return f"{tag}:{owner.kind}" + (f":{owner.name}" if owner.name else "")


async def back_to_the_first_layout(redis: Redis) -> int:
    moved = 0
    async for key in redis.scan_iter(match="{bk:*"):
        await redis.rename(key, first_layout(parse_key(key)))  # one server: any two keys
        moved += 1
    await redis.delete(keys.LAYOUT_KEY)
    return moved


def test_the_plan_reads_each_tag_by_its_state_hash() -> None:
    found = [
        "{b:X:1}:main",  # main of X:1 (X has one sub-bucket: no sub 1 of X here)
        "{b:X:1}:pend",
        "{b:X:0}:sub",
        "{b:X:0}:req:r:1",
        "{b:X:0}:resv",
        "{b:X:a:eu-1}:agent",
        "{b:X:a:eu-1}:in:t:X:7",
        "{b:Y:1}:main",  # shared: main of Y:1 and sub-bucket 1 of Y
        "{b:Y:1}:sub",
        "{b:Y:1}:pend",
        "{q:r:1}",
    ]
    p = plan(found)
    assert sorted(p.moves) == sorted(
        [
            ("{b:X:1}:main", keys.main_keys("X:1").state),
            ("{b:X:1}:pend", keys.main_keys("X:1").pending),
            ("{b:X:0}:sub", keys.sub_keys("X", 0).state),
            ("{b:X:0}:req:r:1", keys.sub_keys("X", 0).request("r:1")),
            ("{b:X:0}:resv", keys.sub_keys("X", 0).expiries),
            ("{b:X:a:eu-1}:agent", keys.agent_keys("X", "eu-1").state),
            ("{b:X:a:eu-1}:in:t:X:7", keys.agent_keys("X", "eu-1").credit_marker("t:X:7")),
        ]
    )
    assert p.shared == {"{b:Y:1}": ["main", "sub"]}
    assert p.unknown == ["{q:r:1}"]


async def test_a_center_started_on_the_first_layout_carries_on(
    fresh_redis: RedisServer, database_url: str
) -> None:
    budget_id = f"shop:{secrets.token_hex(3)}:2026"
    settings = center_settings(fresh_redis.url, database_url)
    with CenterThread(settings) as center:
        client = Client(center.target)
        await create(client, budget_id, 10_000, sub_buckets=4)
        assert (await deduct(client, budget_id, "d:1", 300)).code == OK
        assert (await reserve(client, budget_id, "v:1", 200)).code == OK
        stream = Stream(center.target, "eu-1")
        await stream.hello()
        granted = await stream.grant(budget_id, "s:1", usage(budget_id, 1), needed=500)
        assert granted.amount >= 500
        await stream.close()
        before = await get(client, budget_id)
        await client.close()

    redis = Redis.from_url(fresh_redis.url, decode_responses=True)
    assert await back_to_the_first_layout(redis) > 5

    with CenterThread(settings) as center:
        client = Client(center.target)
        assert await redis.get(keys.LAYOUT_KEY) == keys.LAYOUT
        assert [k async for k in redis.scan_iter(match="{b:*")] == []
        after = await get(client, budget_id)
        assert (after.consumed, after.available, after.reserved) == (
            before.consumed,
            before.available,
            before.reserved,
        )
        again = await deduct(client, budget_id, "d:1", 300)  # its record moved with its sub-bucket
        assert (again.code, again.amount) == (EXISTS, 300)
        assert (await confirm(client, budget_id, "v:1", 150)).code == OK
        await assert_balanced(client, budget_id)
        await client.close()
    await redis.aclose()


async def test_a_tag_two_budgets_shared_stops_the_migration(fresh_redis: RedisServer) -> None:
    redis = Redis.from_url(fresh_redis.url, decode_responses=True)
    await redis.hset("{b:Y:1}:main", mapping={"bal": 5, "gen": 1})
    await redis.hset("{b:Y:1}:sub", mapping={"bal": 7, "gen": 1})
    await redis.hset("{b:Z}:main", mapping={"bal": 9, "gen": 1})
    with pytest.raises(SharedTag, match=r"\{b:Y:1\} holds main, sub"):
        await migrate(redis)
    assert await redis.get(keys.LAYOUT_KEY) is None  # looked at again on the next start
    assert await redis.hget("{b:Y:1}:main", "bal") == "5"
    assert await redis.hget(keys.main_keys("Z").state, "bal") == "9"
    await redis.aclose()
