"""The background loops go on when one budget cannot be worked on: an agent's lost lease in doubt
is not the spend log's to settle (the settlement pass once failed on its holder name and stopped
there), and a budget whose buckets cannot be read is counted in ``quota_loop_failures_total`` and
logged once, while the other budgets are still swept."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from quota_center.buckets import keys
from quota_center.buckets.store import BucketStore
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.store import LedgerStore
from quota_center.transfers.protocol import new_transfer_id, now_ms
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import SHORT_LEASES, CenterThread, Client, center_settings
from tests.helpers.session_stream import Stream, usage


@pytest.fixture
def sweeping(redis_url: str, database_url: str) -> Iterator[CenterThread]:
    """A center whose sweeper runs every 100 ms on transfers stale after 300 ms, with short leases."""
    settings = center_settings(
        redis_url, database_url, **SHORT_LEASES, sweep_interval_ms=100, transfer_stale_ms=300
    )
    running = CenterThread(settings).start()
    yield running
    running.stop()


@pytest.fixture
async def stores(redis_url: str, database_url: str) -> AsyncIterator[tuple[Redis, BucketStore, LedgerStore]]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    ledger = await LedgerStore.open(database_url, batch_wait_ms=0)
    yield redis, BucketStore(redis, 3600), ledger
    await ledger.close()
    await redis.aclose()


def _failures(loop: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("quota_loop_failures_total", {"loop": loop}) or 0.0


async def _lose_lease(client: Client, target: str, budget_id: str) -> None:
    """An agent takes a slice and goes silent: after lease + skew its balance is in doubt."""
    s = Stream(target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await create(client, budget_id, 10_000, sub_buckets=2, max_slice=1_000)
        await s.hello()
        await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        for _ in range(100):
            if (await get(client, budget_id)).in_doubt:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the silent agent's balance should be in doubt")
    finally:
        await s.close()


async def test_an_agent_in_doubt_and_a_broken_budget_stop_no_loop(
    sweeping: CenterThread,
    stores: tuple[Redis, BucketStore, LedgerStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis, buckets, ledger = stores
    tag = secrets.token_hex(4)
    broken, in_doubt, healthy = f"a-{tag}", f"b-{tag}", f"c-{tag}"  # swept in this order
    client = Client(sweeping.target)
    assert sweeping.center is not None
    settlement = sweeping.center.settlement
    assert settlement is not None
    try:
        await _lose_lease(client, sweeping.target, in_doubt)
        # The settlement pass over budgets in doubt: an agent's lost lease is not its to settle.
        assert sweeping.call(settlement.settle_open) == 0
        assert _failures("settlement") == 0

        await create(client, broken, 1_000, sub_buckets=2)
        await create(client, healthy, 1_000, sub_buckets=2)
        # Both active, as a center marks a budget before it moves budget (budgets/activity.py):
        # the sweeper looks at active budgets only.
        active = sweeping.center.expiry.activity.active_key
        await redis.zadd(active, {broken: now_ms(), healthy: now_ms()})
        # A pending record the sweeper cannot read (it reads the pending transfers only).
        await redis.hset(keys.main_keys(broken).pending, "t:broken", "not a pending record")
        before = _failures("sweeper")
        # A transfer of the healthy budget interrupted after its take: the sweeper must abort it
        # although the broken budget comes first in every pass.
        gen = (await ledger.get_budget(healthy)).redis_gen  # type: ignore[union-attr]
        tid = new_transfer_id(healthy)
        took = await buckets.take(healthy, MAIN, tid, 120, "exact", gen, sub_holder(0), now_ms())
        assert took.status == "OK"
        for _ in range(100):
            view = await buckets.read(healthy, MAIN)
            if view is not None and not view.pending:
                break
            await asyncio.sleep(0.05)
        assert view is not None
        assert (view.balance, view.pending) == (1_000, ())
        await asyncio.sleep(0.5)  # a few more passes over the broken budget
        assert _failures("sweeper") - before >= 2  # counted on every pass, not once
        logged = [
            r
            for r in caplog.records
            if r.levelno >= logging.ERROR and f"sweeper on budget {broken}" in r.getMessage()
        ]
        assert len(logged) == 1, [r.getMessage() for r in logged]
        assert not [r for r in caplog.records if "sweep failed" in r.getMessage()]
        await assert_balanced(client, healthy)
        await assert_balanced(client, in_doubt)
    finally:
        await redis.hdel(keys.main_keys(broken).pending, "t:broken")
        await client.close()
