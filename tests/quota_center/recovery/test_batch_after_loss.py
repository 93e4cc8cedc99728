"""A DeductBatch's deductions reach the spend log like single ones: after Redis is lost, their
retries get the original answers, and settlement counts each of them once."""

from __future__ import annotations

from prometheus_client import REGISTRY

from devstack import RedisServer
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import CONFLICT, EXISTS, OK, create
from tests.helpers.center import CenterThread, Client
from tests.helpers.recovery import settled


def waits() -> float:
    """Deductions that found their sub-bucket short (the center runs in this process)."""
    return REGISTRY.get_sample_value("quota_deduct_waits_total") or 0.0


async def test_batch_retries_after_a_loss_get_their_original_answers(
    lone_center: CenterThread, fresh_redis: RedisServer, client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=4, min_slice=500, max_slice=1_000)

    async def spend(prefix: str) -> dict[str, int]:
        amounts = {f"{budget_id}-{prefix}{i}": 3 * (i + 1) for i in range(12)}
        items = [pb.DeductRequest(budget_id=budget_id, request_id=r, amount=a) for r, a in amounts.items()]
        answered = await client.quota.DeductBatch(pb.DeductBatchRequest(items=items))
        assert [(r.code, r.amount) for r in answered.results] == [(OK, a) for a in amounts.values()]
        return amounts

    warm = await spend("w")  # the sub-buckets start empty: these fill them
    before = waits()
    served = await spend("b")  # now every sub-bucket covers its items: all in the one pipeline
    assert waits() == before, "an item of the second batch went the single-deduction way"

    fresh_redis.command("FLUSHALL")  # request records, claims and buckets are gone
    for amounts in (warm, served):
        items = [pb.DeductRequest(budget_id=budget_id, request_id=r, amount=a) for r, a in amounts.items()]
        again = await client.quota.DeductBatch(pb.DeductBatchRequest(items=items))
        assert [(r.code, r.amount) for r in again.results] == [(EXISTS, a) for a in amounts.values()]
    other = pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-b0", amount=99)
    mixed = pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-b1", amount=6)
    conflict = await client.quota.DeductBatch(pb.DeductBatchRequest(items=[other, mixed]))
    assert [r.code for r in conflict.results] == [CONFLICT, EXISTS]

    report = await settled(lone_center, client, budget_id)
    assert report.consumed == sum(warm.values()) + sum(served.values())
