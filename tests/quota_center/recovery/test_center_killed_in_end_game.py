"""A center SIGKILLed in a budget's end game, restarted: from the restart on no deduction is refused
while units are left (promise 3), and the budget drains to exactly zero. Requests whose outcome
the kill hid are retried with their ids until answered, so every answer is known."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devstack import CenterProcess, RedisServer, free_port
from loadtest.verdict import SurelyLeft
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, get
from tests.helpers.center import Client

TOTAL = 3_000


@dataclass
class Answers:
    calls: list[tuple[float, float, int]] = field(default_factory=list)  # (first sent, answered, code)
    served: int = 0
    end_game: asyncio.Event = field(default_factory=asyncio.Event)  # set 300 units before the end


async def _spend(target: str, budget_id: str, w: int, answers: Answers) -> None:
    """Deduct 1 at a time until refused; a call the kill cut off is retried with its id."""
    i = 0
    while True:
        rid, first = f"{budget_id}-w{w}-{i}", time.monotonic()
        code = None
        while code is None:
            client = Client(target)
            try:
                r = await client.quota.Deduct(
                    pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=1), timeout=5
                )
                code = pb.RESULT_CODE_OK if r.code == pb.RESULT_CODE_EXISTS else r.code
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                await asyncio.sleep(0.05)
            finally:
                await client.close()
        answers.calls.append((first, time.monotonic(), code))
        if code == OK:
            answers.served += 1
            if answers.served >= TOTAL - 300:
                answers.end_game.set()
        if code == INSUFFICIENT:
            return
        i += 1


async def test_a_center_killed_in_the_end_game_refuses_nothing_left_after_its_restart(
    own_database: str, fresh_redis: RedisServer, tmp_path: Path, budget_id: str
) -> None:
    port = free_port()

    def center() -> CenterProcess:
        return CenterProcess(
            fresh_redis.url, own_database, log_path=tmp_path / "center.log", port=port, metrics_port=0
        ).start()

    running = center()
    admin = Client(running.target)
    try:
        await create(admin, budget_id, TOTAL, sub_buckets=4, min_slice=5, max_slice=50)
        answers = Answers()
        spenders = [asyncio.create_task(_spend(running.target, budget_id, w, answers)) for w in range(24)]
        await asyncio.wait_for(answers.end_game.wait(), 60)
        running.kill()
        running.wait(10)
        running = center()
        restarted = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*spenders), 120)
        served = sum(1 for _, _, c in answers.calls if c == OK)
        assert served == TOTAL
        surely = SurelyLeft(TOTAL, ((sent, 1) for sent, _, c in answers.calls if c == OK))
        false = [
            (sent, done)
            for sent, done, c in answers.calls
            if c == INSUFFICIENT and done >= restarted and surely.at(done) >= 1
        ]
        after = [c for _, done, c in answers.calls if done >= restarted]
        print(
            f"\nafter the restart: {len(after)} answers, {after.count(OK)} OK, {after.count(INSUFFICIENT)} refusals"
        )
        assert after.count(OK) > 0, "the kill came before the end of the drain"
        assert not false, f"{len(false)} refusals while units were left"
        await admin.close()
        admin = Client(running.target)
        b = await get(admin, budget_id)
        assert (b.consumed, b.available, b.in_doubt) == (TOTAL, 0, 0), b
        await assert_balanced(admin, budget_id)
    finally:
        await admin.close()
        running.stop()
