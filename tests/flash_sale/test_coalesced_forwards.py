"""Deductions an agent forwards while a call to the center is in flight leave together, as one
DeductBatch (region_agent/coalesce.py): the center is called far fewer times than it decides
requests, and every request still gets its own exact answer."""

from __future__ import annotations

import asyncio

from quota.v1 import common_pb2 as pb
from quota_center.metrics import REQUESTS
from tests.helpers.agent import AgentThread
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import Client
from tests.helpers.regions import INSUFFICIENT, OK, Book


def center_calls(method: str) -> int:
    """``method`` calls every center of this process answered so far (its metrics)."""
    return int(
        sum(
            s.value
            for m in REQUESTS.collect()
            for s in m.samples
            if s.name.endswith("_total") and s.labels.get("method") == method
        )
    )


async def test_forwards_in_central_mode_travel_together_with_exact_answers(
    agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    total = 400
    # CENTRAL from the start: every deduction is the center's to decide, so the agent forwards all.
    await create(client, budget_id, total, sub_buckets=2, strategy=pb.STRATEGY_CENTRAL)
    agent = Client(agents[0].target)
    try:
        # The same new id sent several times at once: one deduction, the others told it exists.
        same = pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-same", amount=3)
        answers = await asyncio.gather(*(agent.quota.Deduct(same) for _ in range(6)))
        assert sorted(a.code for a in answers) == [OK] + [pb.RESULT_CODE_EXISTS] * 5, answers
        assert {a.amount for a in answers} == {3}
        assert (await get(client, budget_id)).consumed == 3

        book = Book()
        batches, singles = center_calls("DeductBatch"), center_calls("Deduct")

        async def buyer(w: int) -> None:
            i = 0
            while await book.deduct(agent, 0, budget_id, f"{budget_id}-{w}-{i}", 1) == OK:
                i += 1

        await asyncio.gather(*(buyer(w) for w in range(32)))
        assert book.served == total - 3
        assert book.false_refusals(total - 3) == []
        batched = center_calls("DeductBatch") - batches
        calls = batched + center_calls("Deduct") - singles
        decided = len(book.calls)
        assert batched > 0
        # 32 buyers, one call (or two) in flight: most calls carry several deductions.
        assert calls < decided / 2, (calls, decided)

        b = await get(client, budget_id)
        assert b.consumed == total
        await assert_balanced(client, budget_id)
        assert (await book.deduct(agent, 0, budget_id, f"{budget_id}-last", 1)) == INSUFFICIENT
    finally:
        await agent.close()
