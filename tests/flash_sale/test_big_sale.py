"""A sale of 20,000 1-unit deductions through three agents: exactly 20,000 issued, every refusal
before the sell-out honest, and after it the agents refuse on their own: the center answers at
most one Deduct per 1,000 requests. The agents run as processes of their own, as deployed (and so
that the sale is not paced by one interpreter); the requests "after the sell-out" are those sent
once every buyer has been refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devstack import free_port
from quota.v1 import common_pb2 as pb
from tests.flash_sale.conftest import REGIONS, center_deducts
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import INSUFFICIENT, Book, agent_process, eventually

TOTAL = 20_000
AFTER = 20_000  # requests after the sell-out (in a real sale, most of them)
WORKERS = 48


async def test_a_sale_of_20000_through_three_agents(
    center: CenterThread, client: Client, budget_id: str, tmp_path: Path
) -> None:
    await create(client, budget_id, TOTAL)
    procs = [
        await agent_process(
            tmp_path / f"{r}.journal", center.target, f"{r}-{tmp_path.name[-6:]}", free_port()
        )
        for r in REGIONS
    ]
    clients = [Client(p.target) for p in procs]
    book = Book()
    try:

        async def buyer(w: int) -> None:
            i = 0
            while True:
                code = await book.deduct(
                    clients[(w + i) % 3], (w + i) % 3, budget_id, f"{budget_id}-{w}-{i}", 1
                )
                i += 1
                if code == INSUFFICIENT:
                    return

        await asyncio.gather(*(buyer(w) for w in range(WORKERS)))
        assert book.served == TOTAL
        assert book.false_refusals(TOTAL) == []

        # After the sell-out: AFTER more buyers, answered by the agents themselves.
        before = center_deducts()
        codes: list[int] = []

        async def late(w: int) -> None:
            for i in range(w, AFTER, WORKERS):
                r = await clients[i % 3].quota.Deduct(
                    pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-late-{i}", amount=1)
                )
                codes.append(r.code)

        await asyncio.gather(*(late(w) for w in range(WORKERS)))
        calls = center_deducts() - before
        assert codes.count(INSUFFICIENT) == AFTER, {c: codes.count(c) for c in set(codes)}
        assert calls <= AFTER // 1000, f"{calls} center Deducts for {AFTER} requests after the sell-out"
    finally:
        for c in clients:
            await c.close()
        for p in procs:
            p.stop()

    async def reported() -> bool:
        return (await get(client, budget_id)).consumed == TOTAL

    await eventually(reported, 10, "the agents should report everything they served")
    assert (await get(client, budget_id)).consumed == TOTAL
    await assert_balanced(client, budget_id)
