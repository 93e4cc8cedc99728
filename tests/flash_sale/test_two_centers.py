"""Two center processes serve one budget: three agents (two on one center, one on the other) and
callers of both centers drain a budget of an awkward size with amounts 1..37 to exactly zero, with
no false refusal, and the audit balances. The end game, its pool and the sold-out mark are shared
through Redis and the ledger, not through either process's memory."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from quota.v1 import common_pb2 as pb
from tests.flash_sale.conftest import REGIONS
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.regions import INSUFFICIENT, OK, Book, eventually

TOTAL = 10_007


@pytest.fixture
def second_center(redis_url: str, database_url: str) -> Iterator[CenterThread]:
    running = CenterThread(center_settings(redis_url, database_url)).start()
    yield running
    running.stop()


@pytest.fixture
def spread_agents(
    center: CenterThread, second_center: CenterThread, tmp_path: Path
) -> Iterator[list[AgentThread]]:
    targets = (center.target, center.target, second_center.target)
    running = [
        AgentThread(
            agent_settings(tmp_path / f"{r}.journal", target, agent_id=f"{r}-{tmp_path.name[-6:]}", region=r)
        ).start()
        for r, target in zip(REGIONS, targets, strict=True)
    ]
    yield running
    for a in running:
        a.stop()


async def _deduct(book: Book, c: Client, where: int, budget_id: str, rid: str, amount: int) -> int:
    """One deduction; UNAVAILABLE (units caught between holders of two processes) is retried with
    the same request id, as a caller would."""
    for _ in range(50):
        try:
            return await book.deduct(c, where, budget_id, rid, amount)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"{rid} stayed UNAVAILABLE")


async def test_two_centers_and_three_agents_drain_an_awkward_budget_to_zero(
    center: CenterThread, second_center: CenterThread, spread_agents: list[AgentThread], budget_id: str
) -> None:
    clients = [Client(a.target) for a in spread_agents] + [
        Client(center.target),
        Client(second_center.target),
    ]
    try:
        await create(clients[3], budget_id, TOTAL, sub_buckets=3)
        book = Book()
        rng = random.Random(7)
        done = asyncio.Event()

        async def worker(w: int) -> None:
            i = 0
            while not done.is_set():
                where = rng.randrange(len(clients))
                amount = 1 if i % 9 == 8 else rng.randint(1, 37)
                code = await _deduct(book, clients[where], where, budget_id, f"{budget_id}-{w}-{i}", amount)
                if code == INSUFFICIENT and amount == 1:
                    done.set()
                i += 1

        await asyncio.gather(*(worker(w) for w in range(16)))
        assert book.served == TOTAL, f"served {book.served} of {TOTAL}"
        assert book.false_refusals(TOTAL) == []
        assert {c.code for c in book.calls} <= {OK, INSUFFICIENT}

        async def reported() -> bool:
            return (await get(clients[3], budget_id)).consumed == TOTAL

        await eventually(reported, 10, "the agents should report everything they served")
        await assert_balanced(clients[4], budget_id)
        final = await clients[3].quota.Deduct(
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-last", amount=1)
        )
        assert final.code == INSUFFICIENT
    finally:
        for c in clients:
            await c.close()
