"""Reserve, then confirm or cancel, against the running center (promise 6, exactly once by id)."""

from __future__ import annotations

import asyncio
import time

from quota.v1 import admin_pb2 as apb
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
from tests.helpers.reservations import CANCELLED, CONFIRMED, EXCEEDS, UNKNOWN, cancel, confirm, ended, reserve


async def test_partial_confirm_takes_the_amount_and_releases_the_rest(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    before = time.time_ns() // 1_000_000
    r = await reserve(client, budget_id, rid, 300, ttl_ms=60_000)
    assert (r.code, r.amount) == (OK, 300)
    assert before + 60_000 <= r.expires_at_ms <= time.time_ns() // 1_000_000 + 60_000
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (300, 0, 700)
    await assert_balanced(client, budget_id)

    confirmed = ended("confirmed")
    c = await confirm(client, budget_id, rid, 120)
    assert (c.code, c.amount, c.released) == (OK, 120, 180)
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 120, 880)
    assert ended("confirmed") == confirmed + 1
    await assert_balanced(client, budget_id)


async def test_cancel_releases_everything_once(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    assert (await reserve(client, budget_id, rid, 400, ttl_ms=60_000)).code == OK
    cancelled = ended("cancelled")
    c = await cancel(client, budget_id, rid)
    assert (c.code, c.released) == (OK, 400)
    again = await cancel(client, budget_id, rid)
    assert (again.code, again.released) == (EXISTS, 400)
    late = await confirm(client, budget_id, rid, 10)
    assert (late.code, late.amount, late.released) == (CANCELLED, 0, 0)
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 0, 1_000)
    assert ended("cancelled") == cancelled + 1
    await assert_balanced(client, budget_id)


async def test_duplicate_confirm_exists_another_amount_conflicts_cancel_says_confirmed(
    client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    assert (await reserve(client, budget_id, rid, 100, ttl_ms=60_000)).code == OK
    racing = await asyncio.gather(*(confirm(client, budget_id, rid, 60) for _ in range(10)))
    assert sorted(c.code for c in racing) == sorted([OK] + [EXISTS] * 9)
    assert {(c.amount, c.released) for c in racing} == {(60, 40)}
    other = await confirm(client, budget_id, rid, 70)
    assert (other.code, other.amount) == (CONFLICT, 0)
    too_late = await cancel(client, budget_id, rid)
    assert (too_late.code, too_late.released) == (CONFIRMED, 0)
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 60, 940)
    await assert_balanced(client, budget_id)


async def test_a_retried_reserve_gets_the_original_answer(client: Client, budget_id: str) -> None:
    other = f"{budget_id}-other"
    await create(client, budget_id, 1_000)
    await create(client, other, 1_000)
    rid = f"{budget_id}-r"
    answers = await asyncio.gather(*(reserve(client, budget_id, rid, 50, ttl_ms=60_000) for _ in range(10)))
    assert sorted(a.code for a in answers) == sorted([OK] + [EXISTS] * 9)
    original = next(a for a in answers if a.code == OK)
    assert {(a.amount, a.expires_at_ms) for a in answers} == {(50, original.expires_at_ms)}
    await asyncio.sleep(0.01)
    retry = await reserve(client, budget_id, rid, 50, ttl_ms=60_000)
    assert (retry.code, retry.amount, retry.expires_at_ms) == (EXISTS, 50, original.expires_at_ms)
    assert (await get(client, budget_id)).reserved == 50
    # the same id with other content: amount, TTL, budget or kind
    assert (await reserve(client, budget_id, rid, 51, ttl_ms=60_000)).code == CONFLICT
    assert (await reserve(client, budget_id, rid, 50, ttl_ms=59_000)).code == CONFLICT
    assert (await reserve(client, other, rid, 50, ttl_ms=60_000)).code == CONFLICT
    assert (await deduct(client, budget_id, rid, 50)).code == CONFLICT
    # still the original answer once the reservation has ended
    assert (await confirm(client, budget_id, rid, 50)).code == OK
    after = await reserve(client, budget_id, rid, 50, ttl_ms=60_000)
    assert (after.code, after.amount, after.expires_at_ms) == (EXISTS, 50, original.expires_at_ms)
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed) == (0, 50)
    assert (await get(client, other)).available == 1_000
    await assert_balanced(client, budget_id)


async def test_a_confirmed_reservation_is_refunded_by_its_id(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    assert (await refund(client, budget_id, f"{rid}-early", rid, 1)).code == UNKNOWN
    assert (await reserve(client, budget_id, rid, 200, ttl_ms=60_000)).code == OK
    assert (await refund(client, budget_id, f"{rid}-held", rid, 1)).code == UNKNOWN
    assert (await confirm(client, budget_id, rid, 150)).code == OK
    back = await refund(client, budget_id, f"{rid}-ret1", rid, 100)
    assert (back.code, back.amount, back.refundable) == (OK, 100, 50)
    too_much = await refund(client, budget_id, f"{rid}-ret2", rid, 60)
    assert (too_much.code, too_much.refundable) == (EXCEEDS, 50)
    # a refund does not turn a repeated confirm into a conflict
    assert (await confirm(client, budget_id, rid, 150)).code == EXISTS
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 50, 950)
    await assert_balanced(client, budget_id)


async def test_reserved_units_count_against_the_budget(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000, sub_buckets=4, min_slice=10, max_slice=100)
    # spread the budget over the sub-buckets first, so that the reservation needs a merge
    for i in range(8):
        assert (await deduct(client, budget_id, f"{budget_id}-d{i}", 1)).code == OK
    all_of_it = f"{budget_id}-all"
    assert (await reserve(client, budget_id, all_of_it, 992, ttl_ms=60_000)).code == OK
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (992, 8, 0)
    assert (await deduct(client, budget_id, f"{budget_id}-x", 1)).code == INSUFFICIENT
    assert (await reserve(client, budget_id, f"{budget_id}-y", 1, ttl_ms=60_000)).code == INSUFFICIENT
    await assert_balanced(client, budget_id)
    assert (await cancel(client, budget_id, all_of_it)).code == OK
    # every unit released is issuable again, whichever sub-bucket a request lands on
    assert (await deduct(client, budget_id, f"{budget_id}-x", 1)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-z", 991)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-over", 1)).code == INSUFFICIENT
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 1_000, 0)
    await assert_balanced(client, budget_id)


async def test_paused_budgets_refuse_reserves_but_settle_earlier_reservations(
    client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 1_000)
    held, other = f"{budget_id}-held", f"{budget_id}-other"
    assert (await reserve(client, budget_id, held, 100, ttl_ms=60_000)).code == OK
    assert (await reserve(client, budget_id, other, 100, ttl_ms=60_000)).code == OK
    await client.admin.PauseBudget(apb.ChangeStateRequest(budget_id=budget_id, actor="test"))
    paused = await reserve(client, budget_id, f"{budget_id}-new", 10, ttl_ms=60_000)
    assert (paused.code, paused.amount, paused.expires_at_ms) == (pb.RESULT_CODE_BUDGET_PAUSED, 0, 0)
    # the amount was set aside while the budget was open: it is confirmed or released as promised
    assert (await confirm(client, budget_id, held, 40)).code == OK
    assert (await cancel(client, budget_id, other)).code == OK
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed) == (0, 40)
    await client.admin.CloseBudget(apb.ChangeStateRequest(budget_id=budget_id, actor="test"))
    closed = await reserve(client, budget_id, f"{budget_id}-new", 10, ttl_ms=60_000)
    assert closed.code == pb.RESULT_CODE_BUDGET_CLOSED
    await assert_balanced(client, budget_id)
