"""Redis generations: a rebuild bumps the generation, and writes of an older one are fenced off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

import quota_center.errors
from quota_center.ledger import (
    CURRENT_GEN,
    InvalidArgument,
    LedgerEntry,
    LedgerStore,
    RecordOutcome,
    StaleGeneration,
)

pytestmark = pytest.mark.integration

NewBudget = Callable[..., Awaitable[str]]


def move(budget_id: str, src: str, dst: str, amount: int, gen: int, kind: str = "grant") -> LedgerEntry:
    return LedgerEntry(budget_id, f"{kind}:{uuid.uuid4().hex}", kind, src, dst, amount, "t", "", gen)


async def test_bump_is_a_compare_and_set_and_rebuilds_main(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget(total=1_000)
    assert await ledger.record(move(budget_id, "main", "sub:0", 300, 1)) is RecordOutcome.COMMITTED
    assert await ledger.record(move(budget_id, "sub:0", "main", 100, 1)) is RecordOutcome.COMMITTED

    first = await ledger.bump_generation(budget_id, 1)
    assert (first.gen, first.main, first.state, first.bumped) == (2, 800, "active", True)
    again = await ledger.bump_generation(budget_id, 1)  # another center process, a moment later
    assert (again.gen, again.main, again.bumped) == (2, 800, False)
    with pytest.raises(InvalidArgument):
        await ledger.bump_generation(budget_id, 3)
    racing = await asyncio.gather(*(ledger.bump_generation(budget_id, 2) for _ in range(5)))
    assert sum(r.bumped for r in racing) == 1
    assert {(r.gen, r.main) for r in racing} == {(3, 800)}
    row = await ledger.get_budget(budget_id)
    assert row is not None
    assert row.redis_gen == 3
    rebuilds = [r.entry for r in await ledger.entries(budget_id) if r.entry.kind == "rebuild"]
    assert [(r.transfer_id, r.gen, r.amount) for r in rebuilds] == [
        (f"rebuild:{budget_id}:2", 2, 0),
        (f"rebuild:{budget_id}:3", 3, 0),
    ]
    # What sub:0 held in generation 1 is in doubt, under a holder of its own (see tests/recovery).
    totals = {h: v for h, v in (await ledger.holder_totals(budget_id)).items() if v}
    assert totals == {"external": -1_000, "main": 800, "doubt:sub:0@1": 200}


async def test_old_generation_writes_are_stale_and_change_nothing(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget(total=1_000)
    committed = move(budget_id, "main", "sub:0", 300, 1)
    assert await ledger.record(committed) is RecordOutcome.COMMITTED
    await ledger.bump_generation(budget_id, 1)

    late = move(budget_id, "main", "sub:1", 50, 1)
    assert await ledger.record(late) is RecordOutcome.STALE
    assert await ledger.statuses([late.transfer_id]) == {}
    # A retry of what was committed before the bump is still recognised.
    assert await ledger.record(committed) is RecordOutcome.ALREADY_COMMITTED
    # The same id in another generation is another movement.
    assert await ledger.record(replace(committed, gen=2)) is RecordOutcome.CONFLICT
    # A sweeper can still abort the stale id: markers are never fenced.
    assert await ledger.abort(budget_id, late.transfer_id) is True
    assert await ledger.record(late) is RecordOutcome.ABORTED
    fresh = move(budget_id, "main", "sub:1", 50, 2)
    assert await ledger.record(fresh) is RecordOutcome.COMMITTED
    assert await ledger.record(move(budget_id, "main", "sub:1", 1, 3)) is RecordOutcome.STALE

    balances = {key: v for key, v in (await ledger.holder_balances(budget_id)).items() if v}
    assert balances == {
        ("external", 1): -1_000,
        ("main", 1): 700,
        ("doubt:sub:0@1", 1): 300,  # what the lost sub-bucket held, in doubt under its own name
        ("main", 2): -50,
        ("sub:1", 2): 50,
    }
    aborts = [r.entry for r in await ledger.entries(budget_id) if r.entry.kind == "abort"]
    assert [a.gen for a in aborts] == [2]  # CURRENT_GEN was stored as the budget's generation


async def test_stale_top_up_is_refused_but_a_retry_still_answers(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget(total=100)
    row, applied = await ledger.top_up(budget_id, "before", 10, 1)
    assert (row.total, applied) == (110, True)
    await ledger.bump_generation(budget_id, 1)
    with pytest.raises(StaleGeneration) as caught:
        await ledger.top_up(budget_id, "during", 10, 1)
    assert isinstance(caught.value, quota_center.errors.StaleGeneration)
    row, applied = await ledger.top_up(budget_id, "before", 10, 1)
    assert (row.total, applied) == (110, False)
    row, applied = await ledger.top_up(budget_id, "after", 10, 2)
    assert (row.total, applied) == (120, True)
    # (The bump gave each sub-bucket of generation 1 an in-doubt holder, here at 0.)
    balances = {key: v for key, v in (await ledger.holder_balances(budget_id)).items() if v}
    assert balances == {
        ("external", 1): -110,
        ("main", 1): 110,
        ("external", 2): -10,
        ("main", 2): 10,
    }


async def test_no_old_generation_row_lands_after_a_bump(database_url: str, new_budget: NewBudget) -> None:
    """Rows of generation 1 racing the bump either commit before it (and count in its main) or are
    STALE; if one committed after the bump had computed main, the rebuilt main would be too big."""
    budget_id = await new_budget(total=1_000_000)
    writer = await LedgerStore.open(database_url, max_size=4, batch_max=4, batch_wait_ms=0)
    recovery = await LedgerStore.open(database_url, max_size=1)
    try:
        entries = [move(budget_id, "main", f"sub:{i % 4}", 1, 1) for i in range(400)]

        async def bump_soon() -> int:
            await asyncio.sleep(0.005)
            return (await recovery.bump_generation(budget_id, 1)).main

        *outcomes, rebuilt_main = await asyncio.gather(*(writer.record(e) for e in entries), bump_soon())
        committed = outcomes.count(RecordOutcome.COMMITTED)
        assert set(outcomes) <= {RecordOutcome.COMMITTED, RecordOutcome.STALE}
        assert outcomes.count(RecordOutcome.STALE) > 0, "the bump should land mid-workload"
        assert rebuilt_main == 1_000_000 - committed
        assert (await writer.holder_totals(budget_id))["main"] == rebuilt_main
    finally:
        await writer.close()
        await recovery.close()


async def test_markers_accept_the_current_generation_only_as_marker(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    budget_id = await new_budget()
    with pytest.raises(InvalidArgument):
        await ledger.record(move(budget_id, "main", "sub:0", 1, CURRENT_GEN))
    with pytest.raises(InvalidArgument):
        await ledger.record(move(budget_id, "main", "sub:0", 1, -1))
