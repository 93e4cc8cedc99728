"""An agent refuses a DeductBatch that names a budget that does not exist as the center does:
NOT_FOUND naming the item, and nothing of the batch applied, also the items its slice could serve."""

from __future__ import annotations

import grpc
import pytest

from quota.v1 import common_pb2 as pb
from tests.helpers.agent import AgentClient, AgentThread
from tests.helpers.calls import OK, assert_balanced, create, get
from tests.helpers.center import Client
from tests.helpers.regions import eventually, held_here


async def test_an_unknown_budget_in_the_middle_refuses_the_whole_batch(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=2, max_slice=5_000)
    eu = AgentClient(agents[0].target)
    try:
        first = await eu.quota.Deduct(
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-w", amount=1)
        )
        assert first.code == OK
        await eventually(lambda: _holds(eu, budget_id), 10, "the agent never got a slice")
        items = [
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-1", amount=5),
            pb.DeductRequest(budget_id=f"{budget_id}-none", request_id=f"{budget_id}-2", amount=5),
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-3", amount=5),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await eu.quota.DeductBatch(pb.DeductBatchRequest(items=items))
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND
        assert "items[1]" in (refused.value.details() or "")
        # Nothing of it was applied: the served items are new requests when sent again.
        for item in (items[0], items[2]):
            again = await eu.quota.Deduct(item)
            assert (again.code, again.amount) == (OK, 5)
        await eventually(lambda: _consumed(client, budget_id, 11), 10, "the agent's usage never arrived")
        await assert_balanced(client, budget_id)
    finally:
        await eu.close()


async def _holds(agent: AgentClient, budget_id: str) -> bool:
    return await held_here(agent, budget_id) > 0  # type: ignore[arg-type]


async def _consumed(client: Client, budget_id: str, amount: int) -> bool:
    return (await get(client, budget_id)).consumed == amount
