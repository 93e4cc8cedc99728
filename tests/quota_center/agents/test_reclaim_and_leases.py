"""The end game across agents at the center: a deduction that main and the sub-buckets cannot
cover reclaims what agents hold (reclaim orders over their streams); an agent that does not
answer is named in the refusal with what it holds; a lease that runs out puts the agent's
balance in doubt, and the agent's next report settles it exactly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from quota.v1 import session_pb2 as spb
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, deduct, get
from tests.helpers.center import SHORT_LEASES, CenterThread, Client, center_settings
from tests.helpers.session_stream import Stream, usage


async def _answer_reclaims(s: Stream, budget_id: str, spent: int, seq: int) -> int:
    """Answer the next reclaim order by giving back everything; return what was released."""
    order = (await s.expect("reclaim")).reclaim
    assert order.budget_id == budget_id
    await s.send(
        spb.AgentMessage(
            reclaim_answer=spb.ReclaimAnswer(
                order_id=order.order_id,
                budget_id=budget_id,
                released=order.amount,
                usage=usage(budget_id, seq, consumed=spent, released=order.amount),
            )
        )
    )
    holding = (await s.expect("holding")).holding
    assert holding.balance == 0
    return order.amount


async def test_a_deduction_reclaims_what_agents_hold(
    center: CenterThread, client: Client, budget_id: str
) -> None:
    await create(
        client, budget_id, 1_000, sub_buckets=1, max_slice=400, scarcity_threshold=1, central_threshold=1
    )
    agents = [Stream(center.target, f"ag-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    try:
        held = 0
        for s in agents:
            await s.hello()
            g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
            held += g.amount
        assert held >= 600  # main and the sub-bucket keep at most 400
        # Each agent spent 10 of what it held.
        for s in agents:
            await s.heartbeat(usage(budget_id, 1, consumed=10))
        left = 1_000 - 20
        # One request for all that is left: only possible if both agents give back everything.
        pending = asyncio.create_task(deduct(client, budget_id, f"{budget_id}-all", left))
        released = await asyncio.gather(*(_answer_reclaims(s, budget_id, 10, 2) for s in agents))
        answer = await pending
        assert (answer.code, answer.amount) == (OK, left), answer.message
        assert sum(released) == held - 20
        b = await get(client, budget_id)
        assert (b.consumed, b.available) == (1_000, 0)
        await assert_balanced(client, budget_id)
    finally:
        for s in agents:
            await s.close()


async def test_an_agent_that_does_not_answer_is_named_in_the_refusal(
    center: CenterThread, client: Client, budget_id: str
) -> None:
    await create(
        client, budget_id, 1_000, sub_buckets=1, max_slice=400, scarcity_threshold=1, central_threshold=1
    )
    s = Stream(center.target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await s.hello()
        g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        assert g.amount > 0
        # The agent reads the order but never answers (reclaim timeout: 1 s).
        pending = asyncio.create_task(deduct(client, budget_id, f"{budget_id}-big", 1_000))
        await s.expect("reclaim")
        answer = await pending
        assert answer.code == INSUFFICIENT
        assert f"agent:{s.agent_id} holds {g.amount}" in answer.message, answer.message
        # And in the field clients read, not only in the text.
        assert [(h.holder, h.amount, h.reachable) for h in answer.unreachable] == [
            (f"agent:{s.agent_id}", g.amount, False)
        ]
        b = await get(client, budget_id)
        assert (b.consumed, b.available) == (0, 1_000)  # held by the agent, still the budget's
        await assert_balanced(client, budget_id)
    finally:
        await s.close()


@pytest.fixture
def short_leases(redis_url: str, database_url: str) -> Iterator[CenterThread]:
    settings = center_settings(redis_url, database_url, **SHORT_LEASES)
    running = CenterThread(settings).start()
    yield running
    running.stop()


async def test_a_lease_that_runs_out_puts_the_balance_in_doubt_until_the_agent_reports(
    short_leases: CenterThread, budget_id: str
) -> None:
    client = Client(short_leases.target)
    s = Stream(short_leases.target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await create(client, budget_id, 50_000, sub_buckets=2, max_slice=2_000)
        await s.hello()
        g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        await s.heartbeat(usage(budget_id, 1, consumed=100))
        held = g.amount - 100
        # No heartbeat: after lease (400 ms) + skew (100 ms) the balance goes in doubt.
        for _ in range(100):
            b = await get(client, budget_id)
            if b.in_doubt:
                break
            await asyncio.sleep(0.05)
        assert b.in_doubt == held
        assert b.available == 50_000 - 100 - held  # counted as spent, never re-issued
        report = await assert_balanced(client, budget_id)
        assert any(
            h.holder.startswith(f"doubt:agent:{s.agent_id}@") and h.in_doubt == held for h in report.holders
        )
        # A renewal cannot revive it silently: the agent's report settles it. It had spent 30
        # more before its own (earlier) deadline.
        lease = await s.heartbeat(usage(budget_id, 2, consumed=130))
        (h,) = lease.holdings
        assert h.balance == held - 30
        assert not h.lost
        b = await get(client, budget_id)
        assert (b.in_doubt, b.consumed, b.available) == (0, 130, 50_000 - 130)
        await assert_balanced(client, budget_id)
    finally:
        await s.close()
        await client.close()
