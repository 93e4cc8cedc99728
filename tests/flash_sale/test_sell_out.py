"""The sell-out known at the edge: once a budget has nothing left, the agents refuse locally without
calling the center, and a return at the center lets them serve again, exactly what came back."""

from __future__ import annotations

import asyncio
import time

from quota.v1 import common_pb2 as pb
from quota_rules import messages
from tests.flash_sale.conftest import center_deducts
from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import Client
from tests.helpers.regions import INSUFFICIENT, OK, Book, eventually

# How long after a Return at the center the agents connected to it may still refuse
# (docs/center.md#sell-out: the push is sent once the return landed).
PUSH_WINDOW_S = 2.0


async def _sell_out(clients: list[Client], budget_id: str, book: Book, workers: int, tag: str) -> None:
    """1-unit deductions spread over the agents until every worker has seen a refusal."""

    async def worker(w: int) -> None:
        i = 0
        while True:
            region = (w + i) % len(clients)
            code = await book.deduct(clients[region], region, budget_id, f"{budget_id}-{tag}-{w}-{i}", 1)
            i += 1
            if code == INSUFFICIENT:
                return

    await asyncio.gather(*(worker(w) for w in range(workers)))


async def test_a_return_after_the_sell_out_lets_the_agents_issue_exactly_that_much_more(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    total = 600
    await create(client, budget_id, total, sub_buckets=2)
    clients = [Client(a.target) for a in agents]
    try:
        # Five units deducted at the center, to be returned there after the sell-out.
        first = await client.quota.Deduct(
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-five", amount=5)
        )
        assert first.code == OK
        book = Book()
        await _sell_out(clients, budget_id, book, workers=12, tag="sale")
        assert book.served == total - 5
        assert book.false_refusals(total - 5) == []

        # Sold out: every agent refuses on its own, saying so, and the center hears nothing.
        before = center_deducts()
        for i in range(60):
            r = await clients[i % 3].quota.Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-after-{i}", amount=1)
            )
            assert r.code == INSUFFICIENT, r
            assert r.message == messages.SOLD_OUT_HERE.format(b=budget_id, n=1), r.message
        assert center_deducts() == before

        returned_at = time.monotonic()
        back = await client.quota.Return(
            pb.ReturnRequest(
                budget_id=budget_id,
                request_id=f"{budget_id}-back",
                deduction_id=f"{budget_id}-five",
                amount=5,
            )
        )
        assert back.code == OK, back

        # Within the window every agent serves again: exactly the five units that came back.
        served: list[float] = []
        refused_after: list[int] = []
        i = 0
        while len(served) < 5 and time.monotonic() - returned_at < PUSH_WINDOW_S:
            r = await clients[i % 3].quota.Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-again-{i}", amount=1)
            )
            if r.code == OK:
                served.append(time.monotonic() - returned_at)
            else:
                assert r.code == INSUFFICIENT, r
                refused_after.append(i)
            i += 1
        assert len(served) == 5, f"served {len(served)} of the 5 returned within {PUSH_WINDOW_S}s"
        sixth = await clients[0].quota.Deduct(
            pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-sixth", amount=1)
        )
        assert sixth.code == INSUFFICIENT, sixth
        for c in clients:  # and sold out again everywhere, without the center
            await eventually(
                lambda c=c: _refuses_locally(c, budget_id), 5, "every agent should know it is sold out again"
            )
    finally:
        for c in clients:
            await c.close()

    async def reported() -> bool:
        return (await get(client, budget_id)).consumed == total

    await eventually(reported, 10, "the agents should report everything they served")
    await assert_balanced(client, budget_id)


async def _refuses_locally(c: Client, budget_id: str) -> bool:
    r = await c.quota.Deduct(
        pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-probe-{time.monotonic_ns()}", amount=1)
    )
    assert r.code == INSUFFICIENT, r
    return r.message == messages.SOLD_OUT_HERE.format(b=budget_id, n=1)
