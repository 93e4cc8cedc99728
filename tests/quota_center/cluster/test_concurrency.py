"""(b) Hundreds of concurrent deductions of random sizes, with returns mixed in, on a budget too
small for them, served over a Redis Cluster: never overspent, refusals honest, audit balanced."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import Client


@dataclass
class Refusal:
    amount: int
    sent: float


@dataclass
class Return:
    amount: int
    done: float


async def test_concurrent_deductions_and_returns_never_overspend(client: Client, budget_id: str) -> None:
    rng = random.Random(20261124)
    total = 12_007
    await create(client, budget_id, total, sub_buckets=8, min_slice=40, max_slice=600)
    amounts = [rng.randint(1, 90) for _ in range(360)]
    # Every sixth deduction is partly returned as soon as it is acknowledged.
    give_back = {i: rng.randint(1, amounts[i]) for i in range(0, len(amounts), 6)}
    assert sum(amounts) > total + sum(give_back.values())  # the budget cannot cover them all
    granted: list[int] = []
    refusals: list[Refusal] = []
    returns: list[Return] = []
    codes: list[int] = []
    peak = 0
    done = asyncio.Event()

    async def one(i: int) -> None:
        rid = f"{budget_id}-{i}"
        sent = time.monotonic()
        r = await deduct(client, budget_id, rid, amounts[i])
        codes.append(r.code)
        if r.code == OK:
            assert r.amount == amounts[i]
            granted.append(r.amount)
            if i in give_back:
                back = await refund(client, budget_id, f"{rid}-ret", rid, give_back[i])
                assert back.code == OK, back
                returns.append(Return(give_back[i], time.monotonic()))
        elif r.code == INSUFFICIENT:
            refusals.append(Refusal(amounts[i], sent))

    async def watch() -> None:
        # "Never" means at every instant, not only at the end: sample while the storm runs.
        nonlocal peak
        while not done.is_set():
            b = await get(client, budget_id)
            assert b.consumed + b.in_doubt <= total, b
            peak = max(peak, b.consumed)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(len(amounts))))
    elapsed = time.monotonic() - started
    done.set()
    await watcher

    assert set(codes) <= {OK, INSUFFICIENT}, set(codes)
    assert len(codes) == len(amounts)
    assert refusals, "the budget was too small, some deductions must have been refused"
    b = await get(client, budget_id)
    assert b.consumed == sum(granted) - sum(r.amount for r in returns)
    assert b.consumed <= total
    assert peak <= total
    # A refusal is honest if the request was bigger than what was left when it was decided.
    # Deductions only shrink what is left, returns grow it; so what is left at the end is at
    # most what was left at the decision plus the returns that may have landed after it (those
    # not yet acknowledged when the refused request was sent).
    left = total - b.consumed
    for refusal in refusals:
        late_returns = sum(r.amount for r in returns if r.done > refusal.sent)
        assert refusal.amount > left - late_returns, (refusal, left, late_returns)
    strict = sum(1 for r in refusals if r.amount > left)
    print(
        f"\n{len(amounts)} deductions + {len(returns)} returns in {elapsed:.2f}s: {len(granted)} served,"
        f" {len(refusals)} refused ({strict} bigger than the {left} left at the end), peak consumed {peak}"
    )
    await assert_balanced(client, budget_id)
