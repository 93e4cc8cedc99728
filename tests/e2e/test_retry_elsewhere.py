"""A retry marked as one is safe wherever it lands (quota_rules/retries.py): served from one
agent's slice, retried at another agent or at the center, it has one effect and gets the original
answer; served by the center, retried at an agent, likewise."""

from __future__ import annotations

from quota.v1 import common_pb2 as pb
from quota_rules.retries import RETRY_METADATA
from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import OK, eventually, held_here

EXISTS, CONFLICT = pb.RESULT_CODE_EXISTS, pb.RESULT_CODE_CONFLICT


async def _deduct(
    c: Client, budget_id: str, rid: str, amount: int, *, retry: bool = False
) -> pb.DeductResponse:
    request = pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=amount)
    response: pb.DeductResponse = await c.quota.Deduct(request, metadata=RETRY_METADATA if retry else None)
    return response


async def test_a_marked_retry_has_one_effect_wherever_it_lands(
    center: CenterThread, agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=2)
    eu, us = Client(agents[0].target), Client(agents[1].target)
    served = 0
    try:
        for i in range(30):  # demand, so that eu holds a slice
            assert (await _deduct(eu, budget_id, f"{budget_id}-p{i}", 2)).code == OK
            served += 2

        async def eu_holds() -> bool:
            return await held_here(eu, budget_id) > 50

        await eventually(eu_holds, 10, "eu should hold a slice")
        first = await _deduct(eu, budget_id, f"{budget_id}-x", 7)  # from eu's slice
        assert (first.code, first.amount) == (OK, 7)
        served += 7
        for target in (us, client):
            again = await _deduct(target, budget_id, f"{budget_id}-x", 7, retry=True)
            assert (again.code, again.amount) == (EXISTS, 7), again
        assert (await _deduct(us, budget_id, f"{budget_id}-x", 8, retry=True)).code == CONFLICT

        at_center = await _deduct(client, budget_id, f"{budget_id}-z", 5)
        assert at_center.code == OK
        served += 5
        for target in (eu, us):
            again = await _deduct(target, budget_id, f"{budget_id}-z", 5, retry=True)
            assert (again.code, again.amount) == (EXISTS, 5), again

        # In a retried batch at another agent: the item eu served is not served again.
        batch = pb.DeductBatchRequest(
            items=[
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-x", amount=7),
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-w", amount=2),
            ]
        )
        results = (await us.quota.DeductBatch(batch, metadata=RETRY_METADATA)).results
        assert [(r.code, r.amount) for r in results] == [(EXISTS, 7), (OK, 2)], results
        served += 2

        # A retry nobody served (its first attempt was lost on the way) is served, once.
        fresh = await _deduct(us, budget_id, f"{budget_id}-y", 3, retry=True)
        assert (fresh.code, fresh.amount) == (OK, 3)
        served += 3
        assert (await _deduct(eu, budget_id, f"{budget_id}-y", 3, retry=True)).code == EXISTS

        async def reported() -> bool:
            return (await get(client, budget_id)).consumed == served

        await eventually(reported, 10, "the center should count every request once")
        await assert_balanced(client, budget_id)
    finally:
        await eu.close()
        await us.close()
