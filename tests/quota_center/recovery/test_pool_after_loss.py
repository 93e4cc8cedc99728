"""The end game's pool (docs/center.md#end-game) keeps every promise of a sub-bucket: a deduction is
served once whichever sub-bucket its id hashes to (retries EXISTS, another amount CONFLICT), returns
find it at the pool, and after a Redis loss the spend log names the pool as the holder that served
it, so the settlement books exactly what was acknowledged."""

from __future__ import annotations

import grpc

from devstack.redis_server import RedisServer
from quota.v1 import common_pb2 as pb
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import CONFLICT, EXISTS, OK, assert_balanced, create, deduct, refund
from tests.helpers.center import CenterThread, Client
from tests.helpers.recovery import settled

TOTAL = 1_000


async def test_the_pool_serves_once_refunds_and_settles_after_a_redis_loss(
    lone_center: CenterThread, fresh_redis: RedisServer, client: Client, budget_id: str
) -> None:
    # Central from the start: every deduction goes to the pool, whatever its sub-bucket.
    await create(client, budget_id, TOTAL, sub_buckets=4, central_threshold=TOTAL + 1)
    ids = [f"{budget_id}-{i}" for i in range(40)]
    assert {sub_bucket_for(r, 4) for r in ids} == {0, 1, 2, 3}
    for i, rid in enumerate(ids):
        r = await deduct(client, budget_id, rid, 1 + i % 5)
        assert (r.code, r.amount) == (OK, 1 + i % 5)
    served = sum(1 + i % 5 for i in range(len(ids)))
    report = await assert_balanced(client, budget_id)
    assert {h.holder for h in report.holders if h.consumed} == {"sub:0"}
    assert report.consumed == served

    # Exactly once, at the pool: a retry EXISTS, another amount CONFLICT; a return finds it there.
    for i, rid in enumerate(ids[:8]):
        again = await deduct(client, budget_id, rid, 1 + i % 5)
        assert (again.code, again.amount) == (EXISTS, 1 + i % 5)
        assert (await deduct(client, budget_id, rid, 99)).code == CONFLICT
    back = await refund(client, budget_id, f"{ids[3]}-back", ids[3], 2)
    assert (back.code, back.amount, back.refundable) == (OK, 2, 2)
    assert (await refund(client, budget_id, f"{ids[3]}-back", ids[3], 2)).code == EXISTS
    served -= 2

    # Redis loses everything, the pool with what it held. Until the spend log's entries have
    # settled it (the pool named as the holder that served them), a deduction is UNAVAILABLE, not
    # refused: what is left is in doubt, not gone.
    fresh_redis.command("FLUSHALL")
    try:
        early = (await deduct(client, budget_id, f"{budget_id}-early", 3)).code  # rebuilds it first
        details = ""
    except grpc.aio.AioRpcError as busy:
        early, details = busy.code(), busy.details() or ""
    if early == OK:
        served += 3  # settled already: served, never refused
    else:
        # Not refused: what is left is being settled, or on its way into main.
        assert early == grpc.StatusCode.UNAVAILABLE, (early, details)
        assert "being settled" in details or "moving between holders" in details, details
    final = await settled(lone_center, client, budget_id)
    assert final.consumed == served
    late = await deduct(client, budget_id, f"{budget_id}-late", 3)
    assert late.code == OK
    served += 3
    # Retries of what the pool served before the loss get their first answers.
    again = await deduct(client, budget_id, ids[10], 1 + 10 % 5)
    assert (again.code, again.amount) == (EXISTS, 1 + 10 % 5)
    assert (await deduct(client, budget_id, ids[10], 99)).code == CONFLICT
    left = await deduct(client, budget_id, f"{budget_id}-rest", TOTAL - served)
    assert left.code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-one-more", 1)).code == pb.RESULT_CODE_INSUFFICIENT
    await assert_balanced(client, budget_id)
