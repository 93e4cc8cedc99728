"""The agent's Deduct handler finishes without suspending when the slice covers the request: no
I/O, no await on the hot path. A request the slice cannot cover, with a slice on its way, does
suspend (it waits for that slice)."""

from __future__ import annotations

import asyncio
from typing import Any

from quota.v1 import common_pb2 as pb
from quota_rules.modes import Mode
from quota_rules.usage import Usage
from region_agent.api import QuotaServicer
from region_agent.core.agent import Agent
from region_agent.core.slices import Holding, State
from region_agent.metrics import Metrics
from region_agent.storage.journal import MemoryJournal

NOW = 1_000


class _Context:
    async def abort(self, *args: object) -> None:
        raise AssertionError(f"aborted: {args}")

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()  # a first attempt, not a retry


def _servicer(waits: list[str]) -> QuotaServicer:
    agent = Agent(MemoryJournal(), now=NOW)
    agent.adopt(Holding("b", 1, 100, Usage(), lease_ms=60_000, mode=Mode.NORMAL, state=State.ACTIVE), NOW)

    async def wait(budget_id: str, seconds: float) -> bool:
        waits.append(budget_id)
        await asyncio.sleep(0)
        return False

    center: Any = None  # never reached on these paths
    return QuotaServicer(agent, center, Metrics(), lambda: NOW, wait=wait, wait_s=0.1)


def test_a_covered_deduct_completes_in_one_step() -> None:
    waits: list[str] = []
    coro = _servicer(waits).Deduct(pb.DeductRequest(budget_id="b", request_id="r1", amount=30), _Context())
    try:
        coro.send(None)
    except StopIteration as done:
        response = done.value
    else:
        coro.close()
        raise AssertionError("the covered deduction suspended")
    assert (response.code, response.amount) == (pb.RESULT_CODE_OK, 30)
    assert waits == []


async def test_an_uncovered_deduct_waits_for_the_slice_on_its_way() -> None:
    waits: list[str] = []
    svc = _servicer(waits)
    coro = svc.Deduct(pb.DeductRequest(budget_id="b", request_id="r2", amount=101), _Context())
    assert coro.send(None) is None  # suspended in the wait (asyncio.sleep(0) yields None)
    coro.close()
    assert waits == ["b"]


async def test_a_batch_the_slice_cannot_cover_waits_for_the_slice_then_is_served_here() -> None:
    agent = Agent(MemoryJournal(), now=NOW)
    agent.adopt(Holding("b", 1, 10, Usage(), lease_ms=60_000, mode=Mode.NORMAL, state=State.ACTIVE), NOW)
    waits: list[str] = []

    async def slice_arrives(budget_id: str, seconds: float) -> bool:
        waits.append(budget_id)
        await asyncio.sleep(0)
        grant = Holding("b", 2, 100, Usage(), lease_ms=60_000, mode=Mode.NORMAL, state=State.ACTIVE)
        return agent.adopt(grant, NOW)

    center: Any = None  # a forward would fail: everything must be served here
    svc = QuotaServicer(agent, center, Metrics(), lambda: NOW, wait=slice_arrives, wait_s=0.1)
    items = [pb.DeductRequest(budget_id="b", request_id=f"r{i}", amount=5) for i in range(3)]
    response = await svc.DeductBatch(pb.DeductBatchRequest(items=items), _Context())
    assert [(r.code, r.request_id, r.amount) for r in response.results] == [
        (pb.RESULT_CODE_OK, f"r{i}", 5) for i in range(3)
    ]
    assert waits == ["b"]
    assert agent.usage("b").consumed == 15
