"""Exactly once across a total Redis loss, for every request that reached the spend log."""

from __future__ import annotations

from devstack import RedisServer
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import CONFLICT, EXISTS, OK, create, deduct, refund
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.recovery import settled
from tests.helpers.reservations import cancel, confirm, reserve

EXCEEDS = pb.RESULT_CODE_EXCEEDS_DEDUCTED
UNKNOWN = pb.RESULT_CODE_UNKNOWN_REQUEST


async def test_retries_after_a_loss_get_their_original_answers(
    lone_center: CenterThread, fresh_redis: RedisServer, client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=4, min_slice=100, max_slice=1_000)
    amounts = {f"{budget_id}-d{i}": 10 * (i + 1) for i in range(8)}
    for rid, amount in amounts.items():
        assert (await deduct(client, budget_id, rid, amount)).code == OK
    d0, r0 = f"{budget_id}-d0", f"{budget_id}-r0"
    assert (await refund(client, budget_id, r0, d0, 4)).code == OK

    fresh_redis.command("FLUSHALL")  # request records and claims are gone with the buckets
    for rid, amount in amounts.items():
        again = await deduct(client, budget_id, rid, amount)
        assert (again.code, again.amount) == (EXISTS, amount), again
    assert (await deduct(client, budget_id, f"{budget_id}-d1", 999)).code == CONFLICT
    assert (await deduct(client, budget_id, r0, 4)).code == CONFLICT  # the id of a return
    back = await refund(client, budget_id, r0, d0, 4)
    assert (back.code, back.amount, back.refundable) == (EXISTS, 4, 6)
    assert (await refund(client, budget_id, r0, d0, 5)).code == CONFLICT
    # The pre-loss deduction refunds what it has left, never more.
    over = await refund(client, budget_id, f"{budget_id}-r1", d0, 7)
    assert (over.code, over.refundable) == (EXCEEDS, 6)
    rest = await refund(client, budget_id, f"{budget_id}-r2", d0, 6)
    assert (rest.code, rest.refundable) == (OK, 0)
    assert (await refund(client, budget_id, f"{budget_id}-unknown", f"{budget_id}-nope", 1)).code == UNKNOWN

    fresh_redis.command("FLUSHALL")  # and again: the recreated record goes too
    late = await refund(client, budget_id, f"{budget_id}-r3", d0, 1)
    assert (late.code, late.refundable) == (EXCEEDS, 0)
    again_r = await refund(client, budget_id, f"{budget_id}-r2", d0, 6)
    assert (again_r.code, again_r.amount) == (EXISTS, 6)

    report = await settled(lone_center, client, budget_id)
    assert report.consumed == sum(amounts.values()) - 10
    assert report.main + report.held == 100_000 - report.consumed


async def test_a_center_with_a_stale_view_does_not_serve_a_retry_twice(
    fresh_redis: RedisServer, database_url: str, budget_id: str
) -> None:
    """Center A served a deduction; Redis is lost and center B rebuilds the budget. A still
    believes in the old generation: the retry it gets must not be served a second time."""
    a = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    b = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    ca, cb = Client(a.target), Client(b.target)
    try:
        await create(ca, budget_id, 10_000, sub_buckets=2, min_slice=100, max_slice=500)
        rid = f"{budget_id}-once"
        assert (await deduct(ca, budget_id, rid, 70)).code == OK
        fresh_redis.command("FLUSHALL")
        assert (await deduct(cb, budget_id, f"{budget_id}-other", 5)).code == OK  # B rebuilds
        again = await deduct(ca, budget_id, rid, 70)
        assert (again.code, again.amount) == (EXISTS, 70)
        report = await settled(b, cb, budget_id)
        assert report.consumed == 75
    finally:
        await ca.close()
        await cb.close()
        a.stop()
        b.stop()


async def test_retried_confirms_and_cancels_after_a_loss_get_their_original_answers(
    lone_center: CenterThread, fresh_redis: RedisServer, client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=4, min_slice=100, max_slice=1_000)
    confirmed, cancelled, held = f"{budget_id}-c", f"{budget_id}-x", f"{budget_id}-h"
    for rid in (confirmed, cancelled, held):
        assert (await reserve(client, budget_id, rid, 50)).code == OK
    first = await confirm(client, budget_id, confirmed, 30)
    assert (first.code, first.amount, first.released) == (OK, 30, 20)
    gone = await cancel(client, budget_id, cancelled)
    assert (gone.code, gone.released) == (OK, 50)

    fresh_redis.command("FLUSHALL")  # the reservations' records go with the buckets
    again = await confirm(client, budget_id, confirmed, 30)
    assert (again.code, again.amount) == (EXISTS, 30), again
    assert (await confirm(client, budget_id, confirmed, 31)).code == CONFLICT
    assert (await cancel(client, budget_id, confirmed)).code == pb.RESULT_CODE_CONFIRMED
    again_x = await cancel(client, budget_id, cancelled)
    assert (again_x.code, again_x.released) == (EXISTS, 50), again_x
    assert (await confirm(client, budget_id, cancelled, 1)).code == pb.RESULT_CODE_CANCELLED
    # Never made, or held at the loss (its share is in doubt): nothing to answer from.
    assert (await confirm(client, budget_id, f"{budget_id}-never", 1)).code == UNKNOWN
    assert (await confirm(client, budget_id, held, 1)).code == UNKNOWN

    report = await settled(lone_center, client, budget_id)
    assert report.consumed == 30
