"""Three agents in three regions, end to end: skewed demand drains the budget to exactly zero
with no region refused while budget remained anywhere; the last units spread thin over the
agents are still issued; and in a steady workload the agents call the center rarely."""

from __future__ import annotations

import asyncio
import random

from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import Client
from tests.helpers.regions import INSUFFICIENT, OK, Book, eventually, held_here

SKEW = (0.80, 0.15, 0.05)


async def _drain(clients: list[Client], budget_id: str, book: Book, rng: random.Random, workers: int) -> None:
    """Workers pick a region by the skew and deduct random amounts until a deduction of 1 is refused."""
    done = asyncio.Event()

    async def worker(w: int) -> None:
        i = 0
        while not done.is_set():
            region = rng.choices(range(3), SKEW)[0]
            amount = 1 if i % 7 == 6 else rng.randint(1, 40)
            code = await book.deduct(clients[region], region, budget_id, f"{budget_id}-{w}-{i}", amount)
            if code == INSUFFICIENT and amount == 1:
                done.set()
            i += 1

    await asyncio.gather(*(worker(w) for w in range(workers)))


async def _settled(client: Client, budget_id: str, consumed: int) -> None:
    """Wait until the agents' heartbeats have reported everything they served."""

    async def reported() -> bool:
        return (await get(client, budget_id)).consumed == consumed

    await eventually(reported, 10, f"the center never saw {consumed} consumed")


async def test_skewed_demand_drains_the_budget_to_zero_with_no_false_refusal(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    total = 20_011
    await create(client, budget_id, total, sub_buckets=2)
    clients = [Client(a.target) for a in agents]
    book = Book()
    try:
        await _drain(clients, budget_id, book, random.Random(4), workers=12)
    finally:
        for c in clients:
            await c.close()
    assert book.served == total
    assert book.false_refusals(total) == []
    per_region = [sum(c.amount for c in book.calls if c.code == OK and c.region == r) for r in range(3)]
    assert per_region[0] > per_region[1] > per_region[2] > 0, per_region
    await _settled(client, budget_id, total)
    b = await get(client, budget_id)
    assert (b.consumed, b.available, b.in_doubt) == (total, 0, 0)
    await assert_balanced(client, budget_id)
    served = [
        a.agent.metrics.registry.get_sample_value(
            "quota_region_agent_served_total", {"method": "Deduct", "where": "local"}
        )
        for a in agents
        if a.agent
    ]
    print(f"\nserved per region {per_region}; served locally per agent {served}; calls {len(book.calls)}")


async def test_the_last_units_spread_over_agents_are_still_issued(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    total = 3_000
    await create(client, budget_id, total, sub_buckets=1)
    clients = [Client(a.target) for a in agents]
    book = Book()
    try:
        # Each agent serves a little, and then holds a slice of what is left.
        for region, c in enumerate(clients):
            for i in range(30):
                assert await book.deduct(c, region, budget_id, f"{budget_id}-{region}-{i}", 3) == OK

        async def all_hold() -> bool:
            return all([await held_here(c, budget_id) > 0 for c in clients])

        await eventually(all_hold, 10, "every agent should hold a slice")
        held = [await held_here(c, budget_id) for c in clients]
        left = total - book.served
        assert max(held) < left, (held, left)  # no one holder can cover what is left
        # One request for everything that is left, at the agent holding least.
        region = held.index(min(held))
        code = await book.deduct(clients[region], region, budget_id, f"{budget_id}-rest", left)
        assert code == OK
        assert await book.deduct(clients[0], 0, budget_id, f"{budget_id}-over", 1) == INSUFFICIENT
    finally:
        for c in clients:
            await c.close()
    assert book.served == total
    await _settled(client, budget_id, total)
    await assert_balanced(client, budget_id)


async def test_agents_call_the_center_rarely_in_a_steady_workload(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    """Bound: 50 center calls (forwards and slice requests) per 1000 deductions, after a warm-up
    in which each agent learns the budget (its first requests are forwarded before it holds
    anything). A slice covers about two seconds of an agent's observed demand and is refilled
    below a quarter of it, so an agent asks about once per 1.5 s of its own traffic: at the
    50-100 deductions a second each agent sees here, one call per 75-150 deductions, 7-13 per
    1000; the bound leaves room for a slice that runs dry before its refill lands on a busy
    machine (the request is then forwarded)."""
    await create(client, budget_id, 10_000_000, sub_buckets=2)
    clients = [Client(a.target) for a in agents]
    book = Book()
    rng = random.Random(9)

    async def worker(w: int, phase: str, n: int) -> None:
        for i in range(n):
            region = w % 3
            rid = f"{budget_id}-{phase}-{w}-{i}"
            await book.deduct(clients[region], region, budget_id, rid, rng.randint(1, 5))

    try:
        await asyncio.gather(*(worker(w, "warm", 60) for w in range(6)))
        warm_calls, warm_deductions = _center_calls(agents), len(book.calls)
        await asyncio.gather(*(worker(w, "steady", 400) for w in range(6)))
    finally:
        for c in clients:
            await c.close()
    assert all(c.code == OK for c in book.calls)
    deductions = len(book.calls) - warm_deductions
    calls = _center_calls(agents) - warm_calls
    per_thousand = 1000 * calls / deductions
    print(
        f"\n{deductions} steady deductions through 3 agents: {calls:.0f} center calls, {per_thousand:.1f} per 1000"
    )
    assert per_thousand <= 50
    await _settled(client, budget_id, book.served)
    await assert_balanced(client, budget_id)


def _center_calls(agents: list[AgentThread]) -> float:
    """Forwarded requests and slice requests of all agents so far (from their own metrics)."""
    calls = 0.0
    for a in agents:
        assert a.agent is not None
        reg = a.agent.metrics.registry
        calls += sum(
            reg.get_sample_value("quota_region_agent_forwarded_total", {"reason": r}) or 0 for r in _REASONS
        )
        calls += sum(
            reg.get_sample_value("quota_region_agent_refills_total", {"code": c}) or 0
            for c in ("OK", "INSUFFICIENT")
        )
    return calls


_REASONS = ("unknown", "no_holding", "lost", "state", "central", "lease", "short", "remote", "retry")
