"""Redis lost (FLUSHALL) while three agents hold slices under load: the agents' next reports settle
what they held in doubt to exactly what they served, nothing stays in doubt, consumed is what the
clients were told, the audit balances, and the agents serve from their slices again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from devstack import RedisServer
from quota.v1 import admin_pb2 as apb
from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.regions import OK, Book, eventually, held_here, start_agents, stop_all


async def _load(clients: list[Client], budget_id: str, book: Book, stop: asyncio.Event, tag: str) -> None:
    """Deduct at every agent until ``stop``; a call that fails is retried with its request id at
    the same agent until it is answered, so the book knows the outcome of every request."""

    async def one(region: int, c: Client) -> None:
        i = 0
        while not stop.is_set():
            for _ in range(100):
                try:
                    await book.deduct(c, region, budget_id, f"{budget_id}-{tag}{region}-{i}", 1 + i % 3)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.05)
            i += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(one(r, c) for r, c in enumerate(clients)))


def _served_locally(agent: AgentThread) -> float:
    assert agent.agent is not None
    return sum(
        s.value
        for m in agent.agent.metrics.registry.collect()
        for s in m.samples
        if s.name == "quota_region_agent_served_total" and s.labels.get("where") == "local"
    )


async def test_agents_settle_their_doubt_after_a_redis_loss(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path, budget_id: str
) -> None:
    settings = center_settings(fresh_redis.url, database_url, agent_heartbeat_ms=200)
    center = CenterThread(settings).start()
    agents = start_agents(center.target, tmp_path, ("eu", "us", "ap"))
    clients = [Client(a.target) for a in agents]
    admin = Client(center.target)
    book = Book()
    total = 1_000_000
    try:
        await create(admin, budget_id, total, sub_buckets=2)
        stop = asyncio.Event()
        load = asyncio.create_task(_load(clients, budget_id, book, stop, "a"))

        async def all_hold() -> bool:
            return all([await held_here(c, budget_id) > 20 for c in clients])

        await eventually(all_hold, 20, "every agent should hold a slice")
        fresh_redis.command("FLUSHALL")
        await asyncio.sleep(1.5)  # the load goes on through the loss
        stop.set()
        await load
        assert not [c for c in book.calls if c.code != OK]

        async def settled() -> bool:
            b = await get(admin, budget_id)
            return b.in_doubt == 0 and b.consumed == book.served

        try:
            await eventually(settled, 15, "the agents' reports should settle their doubt to what they served")
        except AssertionError:
            report = (await admin.admin.Audit(apb.AuditRequest(budget_id=budget_id))).budgets[0]
            raise AssertionError(f"served {book.served}; {report}") from None
        b = await get(admin, budget_id)
        assert (b.consumed, b.in_doubt, b.reserved) == (book.served, 0, 0), b
        await assert_balanced(admin, budget_id)

        # And they serve from their slices again: a burst at each is answered without the center.
        local_before = [_served_locally(a) for a in agents]
        stop = asyncio.Event()
        load = asyncio.create_task(_load(clients, budget_id, book, stop, "b"))
        await asyncio.sleep(1.0)
        stop.set()
        await load
        grew = [_served_locally(a) - before for a, before in zip(agents, local_before, strict=True)]
        assert all(g > 0 for g in grew), grew

        async def reported() -> bool:
            return (await get(admin, budget_id)).consumed == book.served

        await eventually(reported, 15, "what the agents served after should be reported")
        await assert_balanced(admin, budget_id)
    finally:
        await stop_all([*clients, admin], agents, center)
