"""The write-behind spend log against a stand-in for PostgreSQL: nothing is dropped, the answer
never waits for it, and ``flushed_until`` never claims an operation that is still running."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from quota_center.buckets.store import Outcome
from quota_center.errors import Unavailable
from quota_center.ledger.spend_log import SpendEntry
from quota_center.recovery.writebehind import WriteBehind, deduct_entry


class Store:
    """Keeps what it is given; fails the next ``failures`` calls; clock is the wall clock."""

    def __init__(self) -> None:
        self.rows: dict[str, SpendEntry] = {}
        self.failures = 0
        self.heartbeats: list[datetime] = []
        self.stopped = False
        self.wrote = asyncio.Event()

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("PostgreSQL is down")

    async def register_instance(self, instance_id: str, name: str) -> None:
        pass

    async def log_spends(self, entries: list[SpendEntry]) -> datetime:
        self._maybe_fail()
        for e in entries:
            self.rows.setdefault(e.request_id, e)
        self.wrote.set()
        return datetime.now(UTC)

    async def db_now(self) -> datetime:
        self._maybe_fail()
        return datetime.now(UTC)

    async def instance_heartbeat(self, instance_id: str, flushed_until: datetime) -> None:
        self._maybe_fail()
        self.heartbeats.append(flushed_until)

    async def stop_instance(self, instance_id: str) -> None:
        self.stopped = True


def entry(i: int) -> SpendEntry:
    return SpendEntry(f"req-{i}", "b", 1, "sub:0", "deduct", 10 + i)


async def served(value: int) -> Outcome:
    return Outcome("OK", value, 0, 1)


async def started(store: Store, **settings: float) -> WriteBehind:
    log = WriteBehind(store, **{"interval_ms": 5, "heartbeat_ms": 10, **settings})  # type: ignore[arg-type]
    await log.start()
    return log


async def test_entries_are_written_behind_the_answer_and_flush_waits_for_them() -> None:
    store = Store()
    log = await started(store, interval_ms=200, heartbeat_ms=200)
    r = await log.call(served(7), deduct_entry("b", 2, "req-x"))
    assert r.value == 7
    assert store.rows == {}  # the answer did not wait for PostgreSQL
    await log.flush()
    assert store.rows["req-x"] == SpendEntry("req-x", "b", 1, "sub:2", "deduct", 7)
    await log.close()
    assert store.stopped


async def test_a_full_batch_is_written_at_once() -> None:
    store = Store()
    log = await started(store, interval_ms=60_000, heartbeat_ms=60_000, batch=3)
    for i in range(3):
        async with log.op() as op:
            op.record(entry(i))
    async with asyncio.timeout(1):
        await store.wrote.wait()  # long before the interval: the batch was full
    assert len(store.rows) == 3
    await log.close()


async def test_entries_survive_failed_writes_and_none_is_dropped() -> None:
    store = Store()
    store.failures = 4
    log = await started(store)
    for i in range(50):
        async with log.op() as op:
            op.record(entry(i))
    async with asyncio.timeout(5):
        await log.flush()
    assert sorted(store.rows) == sorted(f"req-{i}" for i in range(50))
    assert log.failures >= 1
    await log.close()


async def test_flushed_until_never_passes_an_operation_still_running() -> None:
    store = Store()
    log = await started(store)
    release = asyncio.Event()

    async def slow() -> Outcome:
        await release.wait()
        return Outcome("OK", 5, 0, 1)

    running = asyncio.create_task(log.call(slow(), deduct_entry("b", 0, "slow")))
    await asyncio.sleep(0.01)
    entered = datetime.now(UTC)  # the operation started before this instant
    await asyncio.sleep(0.1)  # many flushes meanwhile
    assert store.heartbeats
    assert max(store.heartbeats) <= entered
    release.set()
    await running
    await log.flushed_past(time.monotonic())
    assert "slow" in store.rows
    assert max(store.heartbeats) > entered
    await log.close()


async def test_a_cancelled_caller_still_has_its_effect_logged() -> None:
    store = Store()
    log = await started(store)
    release = asyncio.Event()

    async def slow() -> Outcome:
        await release.wait()
        return Outcome("OK", 9, 0, 1)

    caller = asyncio.create_task(log.call(slow(), deduct_entry("b", 0, "abandoned")))
    await asyncio.sleep(0.01)
    caller.cancel()  # a client deadline: the Redis call may still take effect
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await log.close()
    assert store.rows["abandoned"].amount == 9


async def test_a_center_cut_off_from_postgresql_stops_spending_after_its_lease() -> None:
    store = Store()
    log = await started(store, lease_ms=100)
    store.failures = 10**6
    await asyncio.sleep(0.25)
    work = served(1)
    with pytest.raises(Unavailable, match="spend log"):
        await log.call(work, deduct_entry("b", 0, "refused"))
    store.failures = 0
    await log.flushed_past(time.monotonic())
    assert (await log.call(served(1), deduct_entry("b", 0, "again"))).status == "OK"
    await log.close()


async def test_no_operation_before_start_or_after_close() -> None:
    store = Store()
    log = WriteBehind(store)
    with pytest.raises(Unavailable):
        async with log.op():
            pass
    await log.start()
    await log.close()
    with pytest.raises(Unavailable):
        async with log.op():
            pass
