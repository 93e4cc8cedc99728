"""Deduct and Return at the center against real Redis, PostgreSQL and gRPC."""

from __future__ import annotations

import asyncio
import random

import pytest

from quota.v1 import common_pb2 as pb
from tests.helpers.calls import (
    CONFLICT,
    EXISTS,
    INSUFFICIENT,
    OK,
    assert_balanced,
    create,
    deduct,
    get,
    refund,
)
from tests.helpers.center import Client


async def test_deduct_return_get_audit(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 10_000)
    r = await deduct(client, budget_id, f"{budget_id}-o1", 250)
    assert (r.code, r.amount) == (OK, 250)
    back = await refund(client, budget_id, f"{budget_id}-r1", f"{budget_id}-o1", 100)
    assert (back.code, back.amount, back.refundable) == (OK, 100, 150)
    b = await get(client, budget_id)
    assert (b.total, b.consumed, b.available) == (10_000, 150, 9_850)
    report = await assert_balanced(client, budget_id)
    assert report.consumed == 150


async def test_500_concurrent_random_deductions_never_overspend(client: Client, budget_id: str) -> None:
    """(a) 500 deductions of random sizes race over 4 sub-buckets on a budget too small for all."""
    rng = random.Random(20261123)
    total = 20_011
    await create(client, budget_id, total, sub_buckets=4, min_slice=50, max_slice=800)
    amounts = [rng.randint(1, 90) for _ in range(500)]
    assert sum(amounts) > total  # the budget cannot cover them all
    results = await asyncio.gather(
        *(deduct(client, budget_id, f"{budget_id}-{i}", a) for i, a in enumerate(amounts))
    )
    granted = sum(r.amount for r in results if r.code == OK)
    refused = [a for a, r in zip(amounts, results, strict=True) if r.code == INSUFFICIENT]
    assert {r.code for r in results} <= {OK, INSUFFICIENT}
    assert all(r.amount == a for a, r in zip(amounts, results, strict=True) if r.code == OK)
    b = await get(client, budget_id)
    assert b.consumed == granted <= total
    assert refused, "the budget was too small, some deductions must have been refused"
    # Consumption only grows here, so a refusal that was honest when it was made is still
    # bigger than what is left at the end: nothing was refused that could have been served.
    left = total - b.consumed
    assert left < min(refused), (left, sorted(refused)[:5])
    await assert_balanced(client, budget_id)


async def test_retries_and_concurrent_duplicates_deduct_once(client: Client, budget_id: str) -> None:
    """(b) one request id, many copies at once and later: one effect, one answer."""
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-dup"
    answers = await asyncio.gather(*(deduct(client, budget_id, rid, 70) for _ in range(25)))
    assert sorted(a.code for a in answers).count(OK) == 1
    assert {a.code for a in answers} == {OK, EXISTS}
    assert {a.amount for a in answers} == {70}
    again = await deduct(client, budget_id, rid, 70)
    assert (again.code, again.amount) == (EXISTS, 70)
    assert (await get(client, budget_id)).consumed == 70
    await assert_balanced(client, budget_id)


async def test_conflicting_retries_get_the_conflict_code(client: Client, budget_id: str) -> None:
    other = f"{budget_id}-other"
    await create(client, budget_id, 1_000)
    await create(client, other, 1_000)
    rid = f"{budget_id}-c"
    assert (await deduct(client, budget_id, rid, 10)).code == OK
    assert (await deduct(client, budget_id, rid, 11)).code == CONFLICT
    assert (await deduct(client, other, rid, 10)).code == CONFLICT
    # the id of a deduction cannot be reused as a return id either
    assert (await refund(client, budget_id, rid, rid, 5)).code == CONFLICT
    assert (await get(client, budget_id)).consumed == 10
    assert (await get(client, other)).consumed == 0


async def test_a_return_never_refunds_more_than_was_deducted(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000)
    d = f"{budget_id}-d"
    assert (await deduct(client, budget_id, d, 100)).code == OK
    first = await refund(client, budget_id, f"{d}-r1", d, 60)
    assert (first.code, first.refundable) == (OK, 40)
    too_much = await refund(client, budget_id, f"{d}-r2", d, 50)
    assert (too_much.code, too_much.refundable) == (pb.RESULT_CODE_EXCEEDS_DEDUCTED, 40)
    # a retry of the first return is answered as before and refunds nothing more
    retry = await refund(client, budget_id, f"{d}-r1", d, 60)
    assert (retry.code, retry.amount, retry.refundable) == (EXISTS, 60, 40)
    # ten concurrent returns of 15 against the 40 left: at most two fit
    racing = await asyncio.gather(*(refund(client, budget_id, f"{d}-x{i}", d, 15) for i in range(10)))
    assert [r.code for r in racing].count(OK) == 2
    assert (await get(client, budget_id)).consumed == 100 - 60 - 30
    unknown = await refund(client, budget_id, f"{d}-u", f"{budget_id}-never", 1)
    assert unknown.code == pb.RESULT_CODE_UNKNOWN_REQUEST
    await assert_balanced(client, budget_id)


async def test_returned_budget_can_be_spent_again(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 100, sub_buckets=2)
    assert (await deduct(client, budget_id, f"{budget_id}-a", 100)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-b", 1)).code == INSUFFICIENT
    assert (await refund(client, budget_id, f"{budget_id}-ra", f"{budget_id}-a", 30)).code == OK
    # the refund went back to the sub-bucket of "-a"; a request hashed elsewhere still gets it
    results = [await deduct(client, budget_id, f"{budget_id}-c{i}", 10) for i in range(4)]
    assert [r.code for r in results] == [OK, OK, OK, INSUFFICIENT]
    await assert_balanced(client, budget_id)


@pytest.mark.parametrize("batch", [1, 7])
async def test_deduct_batch_answers_each_item_in_order(client: Client, budget_id: str, batch: int) -> None:
    await create(client, budget_id, 50)
    items = [
        pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-{i}", amount=10) for i in range(batch)
    ]
    response = await client.quota.DeductBatch(pb.DeductBatchRequest(items=items))
    assert [r.request_id for r in response.results] == [i.request_id for i in items]
    codes = [r.code for r in response.results]
    assert codes.count(OK) == min(batch, 5)
    assert codes.count(INSUFFICIENT) == batch - min(batch, 5)
    await assert_balanced(client, budget_id)
