"""Redis lost (flushed, or restarted empty) at random points of a running workload of deductions
and returns: every phase keeps the books (nothing hidden, nothing overspent), what the lost
sub-buckets held shows in doubt per holder, and the spend log settles it to exactly what was
acknowledged. Retries of requests acknowledged before a loss get their original answer."""

from __future__ import annotations

import asyncio
import random
import re

import grpc
import pytest

from devstack import RedisServer
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import CONFLICT, EXISTS, OK, assert_balanced, create, deduct, refund
from tests.helpers.center import CenterThread, Client
from tests.helpers.recovery import Acknowledged, doubt_holders, settled

EXCEEDS = pb.RESULT_CODE_EXCEEDS_DEDUCTED
TOTAL = 10_000_000
WORKERS = 6
PHASES = 4  # a loss ends each phase but the last
DOUBT = re.compile(r"doubt:sub:\d+@\d+")


@pytest.mark.parametrize("seed", [11, 29])
async def test_losses_mid_workload_settle_to_exactly_what_was_acknowledged(
    lone_center: CenterThread, fresh_redis: RedisServer, client: Client, budget_id: str, seed: int
) -> None:
    rng = random.Random(seed)
    await create(client, budget_id, TOTAL, sub_buckets=4, min_slice=200, max_slice=3_000)
    acked = Acknowledged()
    errors: list[grpc.StatusCode] = []

    # Each worker returns only its own deductions (no races between workers), from any phase:
    # many of its returns refund deductions made before one or more losses.
    own: list[list[str]] = [[] for _ in range(WORKERS)]

    async def work(worker: int, phase: int, stop: asyncio.Event) -> None:
        mine = own[worker]
        for i in range(100_000):
            if stop.is_set():
                return
            tag = f"{budget_id}-{phase}-{worker}-{i}"
            try:
                if mine and rng.random() < 0.35:
                    d = rng.choice(mine)
                    left = acked.refundable(d)
                    if left == 0:
                        continue
                    amount = rng.randint(1, left)
                    r = await refund(client, budget_id, f"{tag}-r", d, amount)
                    assert r.code == OK, r
                    acked.returned(f"{tag}-r", d, amount)
                else:
                    r2 = await deduct(client, budget_id, tag, rng.randint(1, 90))
                    assert r2.code == OK, r2
                    acked.deducted(tag, r2.amount)
                    mine.append(tag)
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code())  # Redis restarting under the call: nothing acknowledged

    for phase in range(PHASES):
        stop = asyncio.Event()
        workers = [asyncio.create_task(work(w, phase, stop)) for w in range(WORKERS)]
        # A random point, after some work: however slow the machine, each phase does some.
        await acked.reach(acked.count + 60)
        await asyncio.sleep(rng.uniform(0, 0.25))
        if phase == 1:
            await asyncio.to_thread(fresh_redis.restart)  # comes back empty
        elif phase < PHASES - 1:
            fresh_redis.command("FLUSHALL")
        await acked.reach(acked.count + 30)  # the workload runs on through the rebuild
        await asyncio.sleep(rng.uniform(0, 0.15))
        stop.set()
        await asyncio.gather(*workers)

        # Every phase: balanced, nothing acknowledged hidden, nothing overspent.
        report = await assert_balanced(client, budget_id)
        assert acked.net <= report.consumed + report.in_doubt <= TOTAL
        doubts = [h for h in report.holders if h.in_doubt]
        assert sum(h.in_doubt for h in doubts) == report.in_doubt
        assert all(DOUBT.fullmatch(h.holder) for h in doubts), [h.holder for h in doubts]

    assert set(errors) <= {grpc.StatusCode.UNAVAILABLE}
    # Each loss put what the sub-buckets held in doubt under their own names...
    holders = doubt_holders(lone_center, budget_id)
    assert {h.gen for h in holders} == {1, 2, 3}
    assert all(DOUBT.fullmatch(h.holder) for h in holders)
    # ...and the spend log settles all of it: consumed is exactly what was acknowledged.
    final = await settled(lone_center, client, budget_id)
    assert final.consumed == acked.net
    assert final.in_doubt == 0
    assert final.main + final.held + final.in_flight == TOTAL - acked.net

    # Retries of requests acknowledged before the losses get their original answers.
    early = [d for d in acked.deductions if d.startswith(f"{budget_id}-0-")]
    for d in rng.sample(early, 10):
        again = await deduct(client, budget_id, d, acked.deductions[d])
        assert (again.code, again.amount) == (EXISTS, acked.deductions[d])
        assert (await deduct(client, budget_id, d, acked.deductions[d] + 1)).code == CONFLICT
    early_returns = [r for r in acked.returns if r.startswith(f"{budget_id}-0-")]
    for rid in early_returns[:10]:
        d, amount = acked.returns[rid]
        again_r = await refund(client, budget_id, rid, d, amount)
        assert (again_r.code, again_r.amount) == (EXISTS, amount)
    # A pre-loss deduction refunds what it has left, and not one unit more.
    d = max(early, key=acked.refundable)
    left = acked.refundable(d)
    over = await refund(client, budget_id, f"{d}-over", d, left + 1)
    assert (over.code, over.refundable) == (EXCEEDS, left)
    rest = await refund(client, budget_id, f"{d}-rest", d, left)
    assert (rest.code, rest.refundable) == (OK, 0)
    acked.returned(f"{d}-rest", d, left)
    assert (await refund(client, budget_id, f"{d}-more", d, 1)).code == EXCEEDS

    report = await assert_balanced(client, budget_id)
    assert (report.consumed, report.in_doubt) == (acked.net, 0)
