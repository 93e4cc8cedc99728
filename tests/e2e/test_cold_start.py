"""A burst at an agent that holds nothing of the budget yet waits for one slice instead of
sending every request to the center."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from quota.v1 import common_pb2 as pb
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import OK, eventually


def _forwarded(agent: AgentThread) -> float:
    assert agent.agent is not None
    return sum(
        s.value
        for m in agent.agent.metrics.registry.collect()
        if m.name == "quota_region_agent_forwarded"
        for s in m.samples
        if s.name == "quota_region_agent_forwarded_total"
    )


async def test_a_cold_burst_waits_for_one_slice(
    center: CenterThread, client: Client, budget_id: str, tmp_path: Path
) -> None:
    await create(client, budget_id, 1_000_000, sub_buckets=2)
    # A generous wait: the machine is shared, and the point is that one grant serves the burst.
    settings = agent_settings(
        tmp_path / "cold.journal", center.target, agent_id=f"cold-{uuid.uuid4().hex[:6]}", slice_wait_ms=3_000
    )
    with AgentThread(settings) as agent:
        c = Client(agent.target)
        try:

            async def connected() -> bool:
                assert agent.agent is not None
                return agent.agent.session.connected.is_set()

            await eventually(connected, 10, "the agent should connect")
            answers = await asyncio.gather(
                *(
                    c.quota.Deduct(
                        pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-{i}", amount=3)
                    )
                    for i in range(60)
                )
            )
        finally:
            await c.close()
        assert all((a.code, a.amount) == (OK, 3) for a in answers)
        assert _forwarded(agent) <= 2, "the burst should have waited for the first slice"

    async def reported() -> bool:
        return (await get(client, budget_id)).consumed == 180

    await eventually(reported, 10, "the agent's usage should reach the center")
    await assert_balanced(client, budget_id)
