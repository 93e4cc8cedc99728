"""Budget definitions: create, get, list, top-up and state changes, each with its ledger row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from quota_center.ledger import (
    BudgetClosed,
    BudgetNotFound,
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    LedgerConflict,
    LedgerStore,
)
from quota_rules.limits import MAX_AMOUNT

pytestmark = pytest.mark.integration

NewBudget = Callable[..., Awaitable[str]]
START = datetime(2030, 1, 1, tzinfo=UTC)


def _id() -> str:
    return f"b-{uuid.uuid4().hex}"


async def test_create_then_get_round_trips_every_field(ledger: LedgerStore) -> None:
    budget_id = _id()
    policy: dict[str, int | str] = {"min_slice": 5, "max_slice": 500, "strategy": "progressive"}
    row, created = await ledger.create_budget(
        budget_id,
        unit="USD-cent",
        total=MAX_AMOUNT,
        policy=policy,
        sub_buckets=4,
        valid_from=START,
        valid_until=START + timedelta(days=30),
        actor="alice",
        reason="launch",
    )
    assert created
    assert (row.budget_id, row.unit, row.total, row.state, row.sub_buckets) == (
        budget_id,
        "USD-cent",
        MAX_AMOUNT,
        "active",
        4,
    )
    assert row.policy == policy
    assert row.valid_from == START
    assert row.valid_until == START + timedelta(days=30)
    assert await ledger.get_budget(budget_id) == row

    [create_row] = await ledger.entries(budget_id)
    assert create_row.entry.transfer_id == f"create:{budget_id}"
    assert (create_row.entry.kind, create_row.entry.from_holder, create_row.entry.to_holder) == (
        "create",
        "external",
        "main",
    )
    assert create_row.entry.amount == MAX_AMOUNT
    assert (create_row.entry.actor, create_row.entry.reason) == ("alice", "launch")


async def test_get_unknown_budget_is_none(ledger: LedgerStore) -> None:
    assert await ledger.get_budget(_id()) is None


async def test_create_twice_returns_the_existing_budget(ledger: LedgerStore) -> None:
    budget_id = _id()
    first, created = await ledger.create_budget(budget_id, unit="item", total=10, policy={}, sub_buckets=1)
    assert created
    again, created_again = await ledger.create_budget(
        budget_id, unit="item", total=99, policy={}, sub_buckets=1
    )
    assert not created_again
    assert again == first  # the stored budget, not the new request
    assert not again.same_definition(
        unit="item", total=99, valid_from=None, valid_until=None, policy={}, sub_buckets=1
    )
    assert again.same_definition(
        unit="item", total=10, valid_from=None, valid_until=None, policy={}, sub_buckets=1
    )
    assert len(await ledger.entries(budget_id)) == 1


async def test_retried_create_still_matches_after_a_top_up(ledger: LedgerStore) -> None:
    budget_id = _id()
    other_zone = timezone(timedelta(hours=2))
    await ledger.create_budget(
        budget_id, unit="item", total=10, policy={"a": 1}, sub_buckets=1, valid_from=START
    )
    await ledger.top_up(budget_id, "r1", 5, 1)
    row, created = await ledger.create_budget(
        budget_id, unit="item", total=10, policy={"a": 1}, sub_buckets=1, valid_from=START
    )
    assert not created
    assert row.total == 15
    # The same instant written in another time zone is the same definition.
    assert row.same_definition(
        unit="item",
        total=10,
        valid_from=START.astimezone(other_zone),
        valid_until=None,
        policy={"a": 1},
        sub_buckets=1,
    )


async def test_concurrent_creates_of_one_id_create_it_once(ledger: LedgerStore) -> None:
    budget_id = _id()
    results = await asyncio.gather(
        *(
            ledger.create_budget(budget_id, unit="item", total=t, policy={}, sub_buckets=1)
            for t in range(1, 11)
        )
    )
    winners = [row for row, created in results if created]
    assert len(winners) == 1
    assert all(row == winners[0] for row, _ in results)
    assert len(await ledger.entries(budget_id)) == 1


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("total", MAX_AMOUNT + 1, InvalidAmount),
        ("total", -1, InvalidAmount),
        ("total", True, InvalidAmount),
        ("total", 1.0, InvalidAmount),
        ("unit", "", InvalidArgument),
        ("budget_id", "x" * 257, InvalidArgument),
        ("budget_id", "nul\x00byte", InvalidArgument),
        ("valid_from", datetime(2030, 1, 1), InvalidArgument),
        ("policy", {"k": 1.5}, InvalidArgument),
        ("sub_buckets", -1, InvalidArgument),
    ],
)
async def test_bad_create_is_refused_and_writes_nothing(
    ledger: LedgerStore, field: str, value: object, error: type[Exception]
) -> None:
    args: dict[str, object] = {
        "budget_id": _id(),
        "unit": "item",
        "total": 1,
        "policy": {},
        "sub_buckets": 1,
    }
    args[field] = value
    with pytest.raises(error):
        await ledger.create_budget(**args)  # type: ignore[arg-type]
    if isinstance(args["budget_id"], str) and "\x00" not in args["budget_id"]:
        assert await ledger.get_budget(args["budget_id"][:256]) is None


async def test_validity_window_must_be_ordered(ledger: LedgerStore) -> None:
    with pytest.raises(InvalidArgument):
        await ledger.create_budget(
            _id(), unit="item", total=1, policy={}, sub_buckets=1, valid_from=START, valid_until=START
        )


async def test_list_pages_in_id_order_and_filters_by_state(ledger: LedgerStore) -> None:
    prefix = f"list-{uuid.uuid4().hex}"
    ids = [f"{prefix}-{c}" for c in "dacbe"]
    for budget_id in ids:
        await ledger.create_budget(budget_id, unit="item", total=1, policy={}, sub_buckets=1)
    await ledger.set_state(f"{prefix}-b", "paused")
    await ledger.set_state(f"{prefix}-d", "paused")

    first = await ledger.list_budgets(after=prefix, limit=3)
    assert [b.budget_id for b in first] == [f"{prefix}-{c}" for c in "abc"]
    rest = await ledger.list_budgets(after=first[-1].budget_id, limit=2)
    assert [b.budget_id for b in rest] == [f"{prefix}-{c}" for c in "de"]

    paused = await ledger.list_budgets(state="paused", after=prefix, limit=1000)
    mine = [b.budget_id for b in paused if b.budget_id.startswith(prefix)]
    assert mine == [f"{prefix}-b", f"{prefix}-d"]
    assert all(b.state == "paused" for b in paused)

    with pytest.raises(InvalidArgument):
        await ledger.list_budgets(state="sleeping")
    with pytest.raises(InvalidArgument):
        await ledger.list_budgets(limit=0)


async def test_top_up_applies_once_per_request_id(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=100)
    row, applied = await ledger.top_up(budget_id, "req-1", 50, 1, "bob", "more")
    assert applied
    assert row.total == 150
    again, applied_again = await ledger.top_up(budget_id, "req-1", 50, 1, "bob", "more")
    assert not applied_again
    assert again.total == 150
    with pytest.raises(LedgerConflict):
        await ledger.top_up(budget_id, "req-1", 51, 1)
    row, applied = await ledger.top_up(budget_id, "req-2", 50, 1)
    assert applied
    assert row.total == 200
    kinds = [(r.entry.kind, r.entry.amount) for r in await ledger.entries(budget_id)]
    assert kinds == [("create", 100), ("top_up", 50), ("top_up", 50)]
    assert (await ledger.holder_totals(budget_id))["external"] == -200


async def test_concurrent_identical_top_ups_apply_once(database_url: str, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=0)
    # Warm connections so that the ten transactions really overlap.
    store = await LedgerStore.open(database_url, min_size=10, max_size=10)
    try:
        for _ in range(5):
            request_id = uuid.uuid4().hex
            results = await asyncio.gather(*(store.top_up(budget_id, request_id, 7, 1) for _ in range(10)))
            assert sum(applied for _, applied in results) == 1
        row = await store.get_budget(budget_id)
        assert row is not None
        assert row.total == 5 * 7
    finally:
        await store.close()


async def test_top_up_beyond_max_amount_is_refused(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget(total=MAX_AMOUNT - 10)
    with pytest.raises(InvalidAmount):
        await ledger.top_up(budget_id, "too-much", 11, 1)
    with pytest.raises(InvalidAmount):
        await ledger.top_up(budget_id, "zero", 0, 1)
    row, applied = await ledger.top_up(budget_id, "exact", 10, 1)
    assert applied
    assert row.total == MAX_AMOUNT
    assert len(await ledger.entries(budget_id)) == 2


async def test_top_up_of_unknown_or_closed_budget_is_refused(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    with pytest.raises(BudgetNotFound):
        await ledger.top_up(_id(), "r", 1, 1)
    budget_id = await new_budget(total=5)
    await ledger.top_up(budget_id, "before-close", 1, 1)
    await ledger.set_state(budget_id, "closed")
    with pytest.raises(BudgetClosed):
        await ledger.top_up(budget_id, "after-close", 1, 1)
    # A retry of a top-up made before the close still gets its original answer.
    row, applied = await ledger.top_up(budget_id, "before-close", 1, 1)
    assert (row.total, applied) == (6, False)


async def test_state_life_cycle(ledger: LedgerStore, new_budget: NewBudget) -> None:
    budget_id = await new_budget()
    paused = await ledger.set_state(budget_id, "paused", "ops", "incident")
    assert paused.state == "paused"
    assert paused.updated_at >= paused.created_at
    assert (await ledger.set_state(budget_id, "paused")).state == "paused"  # no-op
    assert (await ledger.set_state(budget_id, "active")).state == "active"
    assert (await ledger.set_state(budget_id, "closed")).state == "closed"
    assert (await ledger.set_state(budget_id, "closed")).state == "closed"  # no-op
    for target in ("active", "paused"):
        with pytest.raises(InvalidTransition):
            await ledger.set_state(budget_id, target)
    row = await ledger.get_budget(budget_id)
    assert row is not None
    assert row.state == "closed"

    state_rows = [r.entry for r in await ledger.entries(budget_id) if r.entry.kind == "state"]
    assert [r.reason for r in state_rows] == ["paused: incident", "active", "closed"]
    assert all(r.amount == 0 and r.from_holder == r.to_holder == "main" for r in state_rows)
    assert len({r.transfer_id for r in state_rows}) == 3
    assert await ledger.holder_balances(budget_id) == {("external", 1): -1_000, ("main", 1): 1_000}


async def test_state_change_of_unknown_budget_or_to_unknown_state(
    ledger: LedgerStore, new_budget: NewBudget
) -> None:
    with pytest.raises(BudgetNotFound):
        await ledger.set_state(_id(), "paused")
    with pytest.raises(InvalidArgument):
        await ledger.set_state(await new_budget(), "deleted")
