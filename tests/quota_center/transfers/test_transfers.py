"""(d) A transfer interrupted between any two of its steps is resolved by the sweeper:
nothing lost, nothing doubled. The steps are driven directly on real Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from quota_center.buckets.store import BucketStore
from quota_center.holders import MAIN, sub_holder
from quota_center.ledger.models import LedgerEntry, RecordOutcome
from quota_center.ledger.store import LedgerStore
from quota_center.transfers.protocol import new_transfer_id, now_ms
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client

STEPS = ("take", "ledger", "credit", "clear")


@pytest.fixture
async def stores(redis_url: str, database_url: str) -> AsyncIterator[tuple[BucketStore, LedgerStore]]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    ledger = await LedgerStore.open(database_url, batch_wait_ms=0)
    yield BucketStore(redis, 3600), ledger
    await ledger.close()
    await redis.aclose()


async def _balances(buckets: BucketStore, budget_id: str) -> dict[str, int]:
    out = {}
    for holder in (MAIN, sub_holder(0), sub_holder(1)):
        view = await buckets.read(budget_id, holder)
        assert view is not None
        out[holder] = view.balance
    return out


async def _drive(
    buckets: BucketStore,
    ledger: LedgerStore,
    budget_id: str,
    source: str,
    target: str,
    amount: int,
    steps: int,
) -> str:
    """Run the first ``steps`` steps of a transfer, as a center that crashed after them would have."""
    gen = (await ledger.get_budget(budget_id)).redis_gen  # type: ignore[union-attr]
    tid = new_transfer_id(budget_id)
    if steps >= 1:
        took = await buckets.take(budget_id, source, tid, amount, "exact", gen, target, now_ms())
        assert (took.status, took.value) == ("OK", amount)
    if steps >= 2:
        entry = LedgerEntry(budget_id, tid, "refill", source, target, amount, "test", "", gen)
        assert await ledger.record(entry) is RecordOutcome.COMMITTED
    if steps >= 3:
        assert (await buckets.credit(budget_id, target, tid, amount, gen)).status == "OK"
    if steps >= 4:
        await buckets.clear(budget_id, source, tid)
    return tid


def _sweep(center: CenterThread, budget_id: str) -> dict[str, int]:
    assert center.center is not None
    sweeper = center.center.sweeper
    return center.call(lambda: sweeper.sweep_budget(budget_id, stale_ms=0))  # type: ignore[no-any-return]


@pytest.mark.parametrize("direction", ["main->sub", "sub->main"])
@pytest.mark.parametrize("steps", [1, 2, 3, 4], ids=[f"stopped after {s}" for s in STEPS])
async def test_interrupted_transfer_is_resolved(
    center: CenterThread,
    client: Client,
    stores: tuple[BucketStore, LedgerStore],
    budget_id: str,
    direction: str,
    steps: int,
) -> None:
    buckets, ledger = stores
    await create(client, budget_id, 1_000, sub_buckets=2)
    sub = sub_holder(0)
    if direction == "sub->main":  # give the sub-bucket something to send back first
        await _drive(buckets, ledger, budget_id, MAIN, sub, 300, 4)
    source, target = (MAIN, sub) if direction == "main->sub" else (sub, MAIN)
    before = await _balances(buckets, budget_id)

    await _drive(buckets, ledger, budget_id, source, target, 120, steps)
    done = _sweep(center, budget_id)

    after = await _balances(buckets, budget_id)
    committed = steps >= 2
    expected = dict(before)
    if committed:
        expected[source] -= 120
        expected[target] += 120
    assert after == expected
    # Only an unfinished transfer is left for the sweeper; it is completed if the ledger has it.
    assert done == {"aborted": int(steps == 1), "completed": int(steps in (2, 3))}
    assert (await buckets.read(budget_id, source)).pending == ()  # type: ignore[union-attr]
    assert _sweep(center, budget_id) == {"aborted": 0, "completed": 0}  # resolving twice changes nothing
    await assert_balanced(client, budget_id)
    assert (await get(client, budget_id)).total == 1_000


async def test_a_late_ledger_write_loses_to_the_sweepers_abort(
    center: CenterThread, client: Client, stores: tuple[BucketStore, LedgerStore], budget_id: str
) -> None:
    """The sweeper aborts a transfer whose ledger write is slow; the write then fails and is undone once."""
    buckets, ledger = stores
    await create(client, budget_id, 1_000, sub_buckets=2)
    gen = (await ledger.get_budget(budget_id)).redis_gen  # type: ignore[union-attr]
    tid = await _drive(buckets, ledger, budget_id, MAIN, sub_holder(1), 200, 1)
    assert _sweep(center, budget_id) == {"aborted": 1, "completed": 0}
    late = LedgerEntry(budget_id, tid, "refill", MAIN, sub_holder(1), 200, "test", "", gen)
    assert await ledger.record(late) is RecordOutcome.ABORTED
    assert (await buckets.restore(budget_id, MAIN, tid)).status == "GONE"  # already put back, not twice
    assert (await _balances(buckets, budget_id))[MAIN] == 1_000
    await assert_balanced(client, budget_id)


async def test_units_in_flight_are_not_refused_as_insufficient(
    center: CenterThread, client: Client, stores: tuple[BucketStore, LedgerStore], budget_id: str
) -> None:
    """A center died in the middle of a transfer (taken from main, never ledgered): until the
    sweeper gives the units back, a request they would cover is told to retry (UNAVAILABLE),
    not refused as if the budget were spent."""
    buckets, ledger = stores
    await create(client, budget_id, 1_000, sub_buckets=2)
    await _drive(buckets, ledger, budget_id, MAIN, sub_holder(0), 800, 1)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await deduct(client, budget_id, f"{budget_id}-big", 900)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "800 units are moving between holders" in (info.value.details() or "")
    # More than even the moving units could cover is refused honestly.
    assert (await deduct(client, budget_id, f"{budget_id}-huge", 1_001)).code == INSUFFICIENT
    assert _sweep(center, budget_id) == {"aborted": 1, "completed": 0}
    done = await deduct(client, budget_id, f"{budget_id}-big", 900)
    assert (done.code, done.amount) == (OK, 900)
