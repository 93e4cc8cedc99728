"""(e) Redis restarted empty in the middle of a workload: the center rebuilds main from the
ledger, what the sub-buckets held turns in doubt, and nothing is ever overspent."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import grpc
import pytest

from devstack import RedisServer
from tests.helpers.calls import OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client, center_settings


@pytest.fixture
def lone_center(fresh_redis: RedisServer, database_url: str) -> Iterator[tuple[CenterThread, RedisServer]]:
    # Without releasing what the spend log shows unconsumed (tests/recovery cover that): what the
    # lost sub-buckets held beyond their logged consumption stays in doubt.
    c = CenterThread(center_settings(fresh_redis.url, database_url, settle_release=0)).start()
    yield c, fresh_redis
    c.stop()


async def test_redis_restarted_empty_mid_workload(
    lone_center: tuple[CenterThread, RedisServer], budget_id: str
) -> None:
    center, redis = lone_center
    client = Client(center.target)
    total = 50_000
    rng = random.Random(7)
    await create(client, budget_id, total, sub_buckets=4, min_slice=100, max_slice=2_000)
    served: list[int] = []
    errors: list[grpc.StatusCode] = []

    async def spend(prefix: str, n: int) -> None:
        for i in range(n):
            amount = rng.randint(1, 60)
            try:
                r = await deduct(client, budget_id, f"{budget_id}-{prefix}-{i}", amount)
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code())  # the moment Redis was down
                continue
            if r.code == OK:
                served.append(r.amount)

    before = asyncio.gather(*(spend(f"w{w}", 60) for w in range(6)))
    await asyncio.sleep(0.3)
    redis.restart()  # comes back empty: no data, no scripts
    await before
    held_before = sum(served)
    await asyncio.gather(*(spend(f"v{w}", 60) for w in range(6)))

    assert set(errors) <= {grpc.StatusCode.UNAVAILABLE}
    b = await get(client, budget_id)
    report = await assert_balanced(client, budget_id)
    assert report.in_doubt > 0, "sub-buckets held budget when Redis was lost"
    # Whatever was acknowledged before the loss is covered by the in-doubt amount (counted as spent).
    assert sum(served) - held_before <= b.consumed
    assert sum(served) <= total
    assert b.consumed + b.in_doubt <= total
    assert b.available == total - b.consumed - b.in_doubt
    # Only main was rebuilt; the in-doubt amount is never issued again, so spending everything
    # that is available still works and stops exactly there.
    rest = b.available
    if rest:
        assert (await deduct(client, budget_id, f"{budget_id}-rest", rest)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-over", 1)).code != OK
    final = await assert_balanced(client, budget_id)
    assert final.consumed + final.in_doubt == total
    await client.close()
