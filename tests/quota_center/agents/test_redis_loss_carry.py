"""An agent's holding that a Redis loss took is carried over by the agent's next report, once:
what the agent says it still has stays its own, the rest is booked as consumed, and never more
than the ledger had granted it comes back, whatever the report claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import RedisServer
from quota.v1 import session_pb2 as spb
from quota_center.buckets.store import Pending
from quota_center.holders import agent_holder
from quota_center.transfers.protocol import Movement
from quota_rules.limits import MAX_AMOUNT
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.session_stream import Stream, usage


@pytest.fixture
def own_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    running = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("claimed", "kept"), [(30, 30), (MAX_AMOUNT, None)], ids=["honest", "claims-too-much"]
)
async def test_the_next_report_carries_the_lost_holding_over(
    own_center: CenterThread, fresh_redis: RedisServer, budget_id: str, claimed: int, kept: int | None
) -> None:
    client = Client(own_center.target)
    s = Stream(own_center.target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await create(client, budget_id, 10_000, sub_buckets=2, max_slice=500)
        await s.hello()
        g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        assert g.amount > 100
        await s.heartbeat(usage(budget_id, 1, consumed=40))
        fresh_redis.command("FLUSHALL")
        # It spent 20 more from its slice meanwhile and reserved 5: by its own account g - 65 is
        # left unreserved (the honest case reports a smaller number: 30, of its own choosing).
        u = usage(budget_id, 2, consumed=60, reserved=5)
        u.available = claimed
        held = await s.report(u)
        b = await get(client, budget_id)
        expected_kept = g.amount if kept is None else kept + 5
        assert held.balance == expected_kept - 5
        assert (b.in_doubt, b.reserved) == (0, 5)
        assert b.consumed == g.amount - expected_kept
        assert b.total == b.main + b.held + b.in_flight + b.reserved + b.in_doubt + b.consumed
        assert b.available <= 10_000 - b.consumed - b.reserved
        await assert_balanced(client, budget_id)
        # A second report carries nothing again.
        again = usage(budget_id, 3, consumed=60, reserved=5)
        again.available = claimed
        assert (await s.report(again)).balance == held.balance
        assert (await get(client, budget_id)).consumed == b.consumed
    finally:
        await s.close()
        await client.close()


async def _holding_a_slice(client: Client, s: Stream, budget_id: str) -> spb.Grant:
    """A budget of 10,000 and an agent holding its first slice (more than 100 units)."""
    await create(client, budget_id, 10_000, sub_buckets=2, max_slice=500)
    await s.hello()
    first = await s.grant(budget_id, "r1", usage(budget_id, 0), rate=1_000)
    assert first.amount > 100
    return first


async def test_a_redis_loss_while_a_slice_is_granted_is_carried_over(
    own_center: CenterThread, fresh_redis: RedisServer, budget_id: str
) -> None:
    """Redis lost just after a grant moved a slice, before the center reads the holding back for
    its answer: the answer carries over what the agent had plus the slice, so the agent's next
    reports apply to it (none is refused) and consumed is exactly what it spent."""
    assert own_center.center is not None
    transfers = own_center.center.transfers
    move = transfers.move
    agent_id = f"ag-{uuid.uuid4().hex[:8]}"
    flushed: list[int] = []

    async def move_then_lose_redis(m: Movement, *args: Any, **kwargs: Any) -> int:
        moved = await move(m, *args, **kwargs)
        if m.target == agent_holder(agent_id) and m.kind == "grant" and armed and not flushed:
            fresh_redis.command("FLUSHALL")
            flushed.append(moved)
        return moved

    armed = False
    transfers.move = move_then_lose_redis  # type: ignore[method-assign]
    client = Client(own_center.target)
    s = Stream(own_center.target, agent_id)
    try:
        first = await _holding_a_slice(client, s, budget_id)
        armed = True
        before = usage(budget_id, 1, consumed=40)
        before.available = first.amount - 40
        second = await s.grant(budget_id, "r2", before, rate=1_000, needed=first.amount)
        assert flushed, "the grant moved no slice: Redis was not lost"
        assert second.amount == flushed[0] > 0, (flushed, second)
        assert second.holding.balance == first.amount - 40 + second.amount, second.holding
        # The agent goes on spending from what it holds: its reports apply, none is refused.
        after = usage(budget_id, 2, consumed=70)
        after.available = first.amount + second.amount - 70
        held = await s.report(after)
        assert held.balance == first.amount + second.amount - 70
        b = await get(client, budget_id)
        assert (b.consumed, b.in_doubt, b.reserved) == (70, 0, 0), b
        await assert_balanced(client, budget_id)
    finally:
        transfers.move = move  # type: ignore[method-assign]
        await s.close()
        await client.close()


async def test_a_grant_lost_with_redis_before_its_credit_is_not_booked_as_spent(
    own_center: CenterThread, fresh_redis: RedisServer, budget_id: str
) -> None:
    """Redis lost after the ledger committed a grant and before its credit reached the agent's
    holding: the agent never had the slice, so its next report carries over what it did have and
    consumed is what it spent, not that plus the slice it never saw."""
    assert own_center.center is not None
    transfers = own_center.center.transfers
    finish = transfers.finish
    agent_id = f"ag-{uuid.uuid4().hex[:8]}"
    lost: list[int] = []

    async def lose_redis_then_finish(budget: str, p: Pending) -> None:
        if p.target == agent_holder(agent_id) and armed and not lost:
            fresh_redis.command("FLUSHALL")
            lost.append(p.amount)
        await finish(budget, p)

    armed = False
    transfers.finish = lose_redis_then_finish  # type: ignore[method-assign]
    client = Client(own_center.target)
    s = Stream(own_center.target, agent_id)
    try:
        first = await _holding_a_slice(client, s, budget_id)
        armed = True
        before = usage(budget_id, 1, consumed=40)
        before.available = first.amount - 40
        await s.send(
            spb.AgentMessage(
                slice_request=spb.SliceRequest(
                    budget_id=budget_id,
                    request_id="r2",
                    needed=first.amount,
                    observed_rate=1_000,
                    usage=before,
                )
            )
        )
        refused = await s.expect("error")
        assert "missing from Redis" in refused.error.message, refused
        assert lost, "no grant reached its credit: Redis was not lost"
        # What the agent had is carried over; the slice it never received is not spent.
        after = usage(budget_id, 2, consumed=60)
        after.available = first.amount - 60
        held = await s.report(after)
        assert held.balance == first.amount - 60
        b = await get(client, budget_id)
        assert (b.consumed, b.in_doubt, b.reserved) == (60, 0, 0), b
        assert b.available == 10_000 - 60
        await assert_balanced(client, budget_id)
    finally:
        transfers.finish = finish  # type: ignore[method-assign]
        await s.close()
        await client.close()
