"""Units an agent is releasing to main are not gone: an agent of another center process gives
back what a relayed reclaim asked for, or gives back on its own, and for a moment the units are in
neither its holding nor main. A refusal decided in that moment would be false (the next request
gets them) and would mark the budget sold out at every agent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from quota.v1 import common_pb2 as pb
from quota_center.buckets.agents import AgentStore
from quota_center.buckets.store import BucketStore
from quota_center.holders import MAIN, agent_holder
from quota_center.ledger.models import LedgerEntry, RecordOutcome
from quota_center.ledger.store import LedgerStore
from quota_center.transfers.protocol import now_ms
from quota_rules.usage import Usage
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage


@pytest.fixture
async def stores(redis_url: str, database_url: str) -> AsyncIterator[tuple[AgentStore, LedgerStore]]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    ledger = await LedgerStore.open(database_url, batch_wait_ms=0)
    yield AgentStore(BucketStore(redis, 3600)), ledger
    await ledger.close()
    await redis.aclose()


async def test_a_release_on_its_way_to_main_is_not_refused(
    center: CenterThread,
    client: Client,
    stores: tuple[AgentStore, LedgerStore],
    budget_id: str,
    agent_id: str,
) -> None:
    agents, ledger = stores
    await create(client, budget_id, 40, sub_buckets=1, max_slice=40)
    s = Stream(center.target, agent_id)
    try:
        await s.hello()
        g = await s.grant(budget_id, "r1", usage(budget_id, 0), rate=1_000)
        assert g.code == pb.RESULT_CODE_OK, g.message
        assert g.amount > 0
        if g.amount < 40:  # the rest spent at the center: the agent holds everything left
            assert (await deduct(client, budget_id, f"{budget_id}-rest", 40 - g.amount)).code == OK
        # Nothing is left where the center can reach it (the stream does not answer reclaims).
        assert (await deduct(client, budget_id, f"{budget_id}-probe", 1)).code == INSUFFICIENT

        # The agent's release applied to its holding, not yet ledgered nor credited to main (as a
        # center process in the middle of a report has it).
        gen = (await ledger.get_budget(budget_id)).redis_gen  # type: ignore[union-attr]
        tid = f"t:{budget_id}:rel:{agent_id}@{gen}:{g.amount}"
        r = await agents.report(
            budget_id,
            agent_id,
            gen,
            Usage(seq=1, released=g.amount),
            lease_until_ms=0,
            transfer_id=tid,
            now_ms=now_ms(),
        )
        assert (r.status, r.released) == ("OK", g.amount)

        # Told to retry, twice: the first refusal's check did not mark the budget sold out either
        # (the second would then be refused from the mark).
        for attempt in ("one", "two"):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await deduct(client, budget_id, f"{budget_id}-{attempt}", 1)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert f"{g.amount} units are moving between holders" in (info.value.details() or "")
    finally:
        await s.close()
    # The release ledgered, the sweeper credits it to main: the unit asked for is issued.
    entry = LedgerEntry(budget_id, tid, "release", agent_holder(agent_id), MAIN, g.amount, "test", "", gen)
    assert await ledger.record(entry) is RecordOutcome.COMMITTED
    assert center.center is not None
    sweeper = center.center.sweeper
    assert center.call(lambda: sweeper.sweep_budget(budget_id, stale_ms=0))["completed"] == 1
    assert (await deduct(client, budget_id, f"{budget_id}-one", 1)).code == OK
    assert (await get(client, budget_id)).consumed == 40 - g.amount + 1
    await assert_balanced(client, budget_id)
