"""Exactly once through agents (docs/agents.md, "Retrying safely"): a retry at the same agent gets
the original answer without a second effect, whether the slice served it or the center did; a
request the center served, retried at another agent, is forwarded again and applied once."""

from __future__ import annotations

from quota.v1 import common_pb2 as pb
from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import Client
from tests.helpers.regions import OK, eventually, held_here

EXISTS = pb.RESULT_CODE_EXISTS
CONFLICT = pb.RESULT_CODE_CONFLICT


def _forwarded(agent: AgentThread) -> float:
    assert agent.agent is not None
    reg = agent.agent.metrics.registry
    return sum(
        s.value
        for m in reg.collect()
        if m.name == "quota_region_agent_forwarded"
        for s in m.samples
        if s.name == "quota_region_agent_forwarded_total"
    )


async def _deduct(c: Client, budget_id: str, rid: str, amount: int) -> pb.DeductResponse:
    return await c.quota.Deduct(pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=amount))


async def test_retries_through_agents_apply_once(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 1_000_000, sub_buckets=2)
    eu, us = Client(agents[0].target), Client(agents[1].target)
    try:
        # The first request of a budget at an agent is forwarded: the agent holds nothing yet.
        first = await _deduct(eu, budget_id, f"{budget_id}-fwd", 7)
        assert (first.code, first.amount) == (OK, 7)
        before = _forwarded(agents[0])
        again = await _deduct(eu, budget_id, f"{budget_id}-fwd", 7)
        assert (again.code, again.amount) == (EXISTS, 7)
        assert _forwarded(agents[0]) == before  # answered from its record, no second call
        # Retried at another agent: forwarded again (it never saw the id), applied once.
        elsewhere = await _deduct(us, budget_id, f"{budget_id}-fwd", 7)
        assert (elsewhere.code, elsewhere.amount) == (EXISTS, 7)
        conflict = await _deduct(us, budget_id, f"{budget_id}-fwd", 8)
        assert conflict.code == CONFLICT

        # Once the agent holds a slice, it serves locally; a retry there gets the same answer.
        async def holds() -> bool:
            return await held_here(eu, budget_id) > 10

        await eventually(holds, 10, "the agent should hold a slice")
        local = await _deduct(eu, budget_id, f"{budget_id}-loc", 5)
        assert (local.code, local.amount) == (OK, 5)
        for _ in range(3):
            retry = await _deduct(eu, budget_id, f"{budget_id}-loc", 5)
            assert (retry.code, retry.amount) == (EXISTS, 5)
        assert (await _deduct(eu, budget_id, f"{budget_id}-loc", 6)).code == CONFLICT

        async def reported() -> bool:
            return (await get(client, budget_id)).consumed == 12

        await eventually(reported, 10, "7 + 5 consumed, each once")
        await assert_balanced(client, budget_id)
    finally:
        await eu.close()
        await us.close()
