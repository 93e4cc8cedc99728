"""The filler on real Redis, PostgreSQL and gRPC: sub-buckets filled ahead of demand,
idle ones released, and main shared between holders by their demand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from quota.v1 import admin_pb2 as apb
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.models import LedgerRow
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import OK, assert_balanced, audit, create, deduct, get
from tests.helpers.center import Client
from tests.quota_center.refill.background.conftest import Running

SUBS = 4


def _ids_for(budget_id: str, index: int, n: int) -> list[str]:
    """``n`` request ids of ``budget_id``'s pattern that land on sub-bucket ``index``."""
    ids: list[str] = []
    i = 0
    while len(ids) < n:
        rid = f"{budget_id}-{i}"
        if sub_bucket_for(rid, SUBS) == index:
            ids.append(rid)
        i += 1
    return ids


async def _paced(client: Client, budget_id: str, ids: list[str], amount: int, per_s: float) -> None:
    """Deduct ``amount`` once per id, one after another, ``per_s`` a second."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, rid in enumerate(ids):
        delay = start + i / per_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        r = await deduct(client, budget_id, rid, amount)
        assert r.code == OK, r.message


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _primed(client: Client, budget_id: str) -> None:
    """Use the new budget once (a created budget is idle: budgets/activity.py), then wait until the
    filler has found it: it primes each sub-bucket with min_slice."""
    assert (await deduct(client, budget_id, f"{budget_id}-first", 1)).code == OK

    async def held() -> bool:
        return (await get(client, budget_id)).held > 0

    await _eventually(held, 5, "the filler never primed the new budget")


async def _balances(client: Client, budget_id: str) -> dict[str, int]:
    return {h.holder: h.balance for h in (await audit(client, budget_id)).holders}


async def _ledger(running: Running, budget_id: str) -> list[LedgerRow]:
    """The budget's ledger rows in commit order, read by the center's own store (on its loop)."""
    center = running.center.center
    assert center is not None
    rows = await asyncio.to_thread(
        running.center.call, lambda: center.ledger.entries(budget_id, limit=10_000)
    )
    return list(rows)


STREAM = 600  # deductions
STREAM_AMOUNT = 20
STREAM_RATE = 200.0  # deductions a second, spread over 4 sub-buckets by their ids


async def _stream_waits(running: Running, budget_id: str, *, primed: bool) -> int:
    """Waits (deductions that found their sub-bucket short) in a steady stream on a plentiful budget.

    Slices are at most 100 units, 5 deductions: refilled only on demand, every 5th
    deduction of a sub-bucket waits.
    """
    client = Client(running.center.target)
    try:
        await create(client, budget_id, 10_000_000, sub_buckets=SUBS, min_slice=10, max_slice=100)
        if primed:
            await _primed(client, budget_id)
        ids = [f"{budget_id}-{i}" for i in range(STREAM)]
        await _paced(client, budget_id, ids, STREAM_AMOUNT, STREAM_RATE)
        assert (await get(client, budget_id)).consumed == STREAM * STREAM_AMOUNT + int(primed)
        await assert_balanced(client, budget_id)
    finally:
        await client.close()
    return running.waits.count(budget_id)


async def test_a_steady_stream_rarely_waits_for_a_refill(
    filled: Running, unfilled: Running, budget_id: str
) -> None:
    with_filler = await _stream_waits(filled, budget_id, primed=True)
    without = await _stream_waits(unfilled, f"{budget_id}-nf", primed=False)
    print(
        f"waits per 1000 deductions: {1000 * with_filler / STREAM:.0f} with the filler, "
        f"{1000 * without / STREAM:.0f} without"
    )
    assert with_filler < 0.10 * STREAM, (with_filler, without)
    # The control: the same stream without the filler waits on about every 5th deduction.
    assert without > 0.15 * STREAM, (with_filler, without)


async def test_idle_sub_buckets_release_their_surplus_to_main(
    filled: Running, client: Client, budget_id: str
) -> None:
    total, min_slice = 100_000, 10
    await create(client, budget_id, total, sub_buckets=SUBS, min_slice=min_slice, max_slice=1_000)
    await _primed(client, budget_id)
    await asyncio.gather(*(deduct(client, budget_id, f"{budget_id}-{i}", 10) for i in range(40)))
    busy = await get(client, budget_id)
    assert busy.consumed == 401
    assert busy.held > SUBS * min_slice, "the deductions left slices in the sub-buckets"

    async def released() -> bool:
        b = await get(client, budget_id)
        return b.held <= SUBS * min_slice and b.in_flight == 0

    await _eventually(released, 5, "idle sub-buckets kept their slices")
    b = await get(client, budget_id)
    assert b.main == total - b.consumed - b.held
    balances = await _balances(client, budget_id)
    assert all(balances[sub_holder(i)] <= min_slice for i in range(SUBS)), balances
    assert any(row.entry.kind == "release" for row in await _ledger(filled, budget_id))
    await asyncio.sleep(1.0)  # idle sub-buckets are not filled again
    assert await _balances(client, budget_id) == balances
    await assert_balanced(client, budget_id)


async def test_a_hot_sub_bucket_does_not_take_all_of_main_while_others_draw(
    filled: Running, client: Client, budget_id: str
) -> None:
    """Sub-bucket 0 draws three times what each other one does, and a slice covering an hour of
    its demand would be all of main: only its fair share of main limits each of its fills, in
    the background or on demand (its rate jumps faster than the filler looks again)."""
    await create(
        client,
        budget_id,
        400,
        sub_buckets=SUBS,
        min_slice=10,
        max_slice=100_000,
        refill_horizon_ms=3_600_000,
        scarcity_threshold=1,
        central_threshold=1,
    )
    await _primed(client, budget_id)
    ids = {k: iter(_ids_for(budget_id, k, 200)) for k in range(SUBS)}
    alike = [next(ids[k]) for _ in range(7) for k in range(SUBS)]
    await _paced(client, budget_id, alike, 10, 1 / 0.01)  # every sub-bucket draws: all rates known
    # Main was small so far; now it holds plenty, and every fill from here on is bounded by a share.
    top_up = await client.admin.TopUp(
        apb.TopUpRequest(budget_id=budget_id, request_id=budget_id, amount=6_000)
    )
    assert top_up.code == OK, top_up.message
    mark = max(row.seq for row in await _ledger(filled, budget_id))
    hot = [next(ids[k]) for _ in range(60) for k in (0, 0, 0, 1, 2, 3)]
    await _paced(client, budget_id, hot, 10, 1 / 0.0025)

    main, checked = 0, 0
    for row in await _ledger(filled, budget_id):
        e = row.entry
        before = main
        main += (e.amount if e.to_holder == MAIN else 0) - (e.amount if e.from_holder == MAIN else 0)
        if row.seq > mark and e.kind in ("fill", "refill") and e.to_holder == sub_holder(0) and before >= 200:
            checked += 1
            assert main >= 0.1 * before, f"sub:0 took {e.amount} of main's {before}"
    assert checked, "sub:0 was never filled while it ran hot"
    assert (await get(client, budget_id)).consumed == 10 * (len(alike) + len(hot)) + 1
    await assert_balanced(client, budget_id)
