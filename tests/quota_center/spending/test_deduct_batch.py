"""The center's DeductBatch: one pipeline of deduct.lua calls on one Redis server, and every
item answered as a Deduct of it would be: retries, conflicts, repeats within the batch, paused
budgets, sub-buckets that need a refill, and the end of the budget. (Items the pipeline does not
settle go on concurrently, as separate Deducts would: their order is not the batch's.)"""

from __future__ import annotations

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import CONFLICT, EXISTS, INSUFFICIENT, OK, assert_balanced, create, deduct, get
from tests.helpers.center import Client

PAUSED = pb.RESULT_CODE_BUDGET_PAUSED


async def batch(client: Client, *items: tuple[str, str, int]) -> list[tuple[int, int]]:
    request = pb.DeductBatchRequest(
        items=[pb.DeductRequest(budget_id=b, request_id=r, amount=a) for b, r, a in items]
    )
    response = await client.quota.DeductBatch(request)
    assert [r.request_id for r in response.results] == [r for _, r, _ in items]
    return [(r.code, r.amount) for r in response.results]


async def test_each_item_gets_the_answer_a_deduct_would(client: Client, budget_id: str) -> None:
    small, paused = f"{budget_id}-small", f"{budget_id}-paused"
    await create(client, budget_id, 10_000, sub_buckets=4, min_slice=10, max_slice=50)
    await create(client, small, 30, sub_buckets=2, min_slice=1, max_slice=5)
    await create(client, paused, 1_000)
    await client.admin.PauseBudget(apb.ChangeStateRequest(budget_id=paused, actor="test"))
    assert (await deduct(client, budget_id, f"{budget_id}-before", 7)).code == OK

    got = await batch(
        client,
        (budget_id, f"{budget_id}-a", 5),
        (budget_id, f"{budget_id}-before", 7),  # served before: EXISTS, the original amount
        (budget_id, f"{budget_id}-before-2", 300),  # more than a sub-bucket's slice: refilled
        (budget_id, f"{budget_id}-a", 5),  # repeated in the batch: EXISTS
        (budget_id, f"{budget_id}-before", 8),  # the id of another request: CONFLICT
        (paused, f"{budget_id}-p", 1),
        (small, f"{budget_id}-s1", 20),
        (small, f"{budget_id}-s2", 10),  # the last units of the small budget, merged back for these
    )
    assert got == [
        (OK, 5),
        (EXISTS, 7),
        (OK, 300),
        (EXISTS, 5),
        (CONFLICT, 0),
        (PAUSED, 0),
        (OK, 20),
        (OK, 10),
    ]
    assert (await get(client, budget_id)).consumed == 312
    assert (await get(client, small)).consumed == 30
    # Retried: every item answered as before, nothing spent twice; nothing left of the small one.
    again = await batch(
        client,
        (budget_id, f"{budget_id}-a", 5),
        (small, f"{budget_id}-s1", 20),
        (small, f"{budget_id}-s3", 1),
    )
    assert again == [(EXISTS, 5), (EXISTS, 20), (INSUFFICIENT, 0)]
    for b in (budget_id, small, paused):
        await assert_balanced(client, b)
