"""Background work follows what is in use (budgets/activity.py): a center's loops look only at the
budgets with something to do. Watched from outside with Redis MONITOR: an idle or a closed budget
costs no command, while a budget with a live reservation is still looked after, an idle budget
that is used again is tended (refilled in the background) again, and reservations expire on time from the schedule, even when
the schedule or the active set lost the budget."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from redis import Redis

from quota.v1 import admin_pb2 as apb
from tests.helpers.calls import OK, create, deduct, get
from tests.helpers.center import CenterThread, Client, own_ledger_center
from tests.helpers.reservations import reserve

FAST = {
    "fill_interval_ms": 50,
    "expiry_interval_ms": 100,
    "agent_expiry_interval_ms": 100,
    "gauge_interval_s": 0.2,
    "sweep_interval_ms": 200,
    "idle_after_ms": 1_000,
    "activity_interval_ms": 100,
}


@pytest.fixture(scope="module")
def busy_center(redis_url: str, database_url: str) -> Iterator[CenterThread]:
    """A center of its own ledger (its loops see only these tests' budgets) with fast loops, and
    budgets idle after 1 s."""
    with own_ledger_center(redis_url, database_url, "qc_act", **FAST) as running:
        yield running


@pytest.fixture
def serving(busy_center: CenterThread) -> CenterThread:
    return busy_center


class Monitor:
    """Every command Redis runs while it is open (MONITOR), as text."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = Redis.from_url(url, decode_responses=True)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._ready = threading.Event()

    def _read(self) -> None:
        with self.redis.monitor() as m:
            self._ready.set()
            for command in m.listen():
                if self._stop.is_set():
                    return
                self.lines.append(str(command["command"]))

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with Redis.from_url(self.url) as r:
            r.ping()  # a command for the reader to see: it then stops
        self._thread.join(timeout=5)
        self.redis.close()
        self.redis.connection_pool.disconnect()

    def naming(self, budget_id: str) -> list[str]:
        return [line for line in self.lines if budget_id in line]


def _keys(center: CenterThread) -> tuple[str, str]:
    assert center.center is not None
    activity = center.center.expiry.activity
    return activity.active_key, activity.due_key


def _active(redis_url: str, center: CenterThread) -> set[str]:
    with Redis.from_url(redis_url, decode_responses=True) as r:
        return set(r.zrange(_keys(center)[0], 0, -1))


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_idle_and_closed_budgets_cost_no_redis_command(
    busy_center: CenterThread, client: Client, redis_url: str
) -> None:
    tag = secrets.token_hex(4)
    idle, closed, held = f"idle-{tag}", f"closed-{tag}", f"held-{tag}"
    for b in (idle, closed, held):
        await create(client, b, 10_000, sub_buckets=2)
    assert (await deduct(client, idle, f"{idle}-1", 10)).code == OK
    assert (await deduct(client, closed, f"{closed}-1", 10)).code == OK
    await client.admin.CloseBudget(apb.ChangeStateRequest(budget_id=closed, actor="test"))
    assert (await deduct(client, held, f"{held}-1", 10)).code == OK
    assert (await reserve(client, held, f"{held}-r", 5, ttl_ms=60_000)).code == OK

    async def marked() -> bool:  # a request's mark is written behind it
        return {idle, held} <= _active(redis_url, busy_center)

    await _until(marked, 5, "the budgets used were never marked active")

    async def idle_left() -> bool:
        return idle not in _active(redis_url, busy_center)

    await _until(idle_left, 15, "the used-then-idle budget never left the active set")
    assert closed not in _active(redis_url, busy_center)
    assert held in _active(redis_url, busy_center)  # a live reservation: not idle

    with Monitor(redis_url) as seen:
        await asyncio.sleep(1.5)  # several rounds of every loop
    assert seen.naming(idle) == []
    assert seen.naming(closed) == []
    assert seen.naming(held), "no loop looked at the budget with a live reservation"

    # Used again, the idle budget is active again, and the filler tends it: it refills the
    # sub-buckets in the background (ledger rows by the filler), not only on demand.
    center = busy_center.center
    assert center is not None

    def fills() -> int:
        rows = busy_center.call(lambda: center.ledger.entries(idle, limit=10_000))
        return sum(1 for r in rows if r.entry.actor == "filler" and r.entry.kind == "fill")

    before = fills()
    for n in range(2, 12):
        assert (await deduct(client, idle, f"{idle}-{n}", 10)).code == OK
        await asyncio.sleep(0.05)
    assert idle in _active(redis_url, busy_center)
    with Monitor(redis_url) as seen:
        await asyncio.sleep(0.5)
    assert seen.naming(idle), "the budget used again was not looked at"
    assert (await get(client, idle)).consumed == 110

    # A steady stream: its sub-buckets cross their watermarks, and the filler tops them up.
    n = 12
    deadline = time.monotonic() + 10
    while fills() == before:
        assert time.monotonic() < deadline, "the budget in use again was not refilled in the background"
        assert (await deduct(client, idle, f"{idle}-{n}", 10)).code == OK
        n += 1
        await asyncio.sleep(0.02)
    assert (await get(client, idle)).consumed == 10 * (n - 1)


@pytest.mark.parametrize("lost", ["nothing", "its schedule entry", "its schedule entry and active mark"])
async def test_reservations_expire_on_time_from_the_schedule(
    busy_center: CenterThread, client: Client, redis_url: str, budget_id: str, lost: str
) -> None:
    """The expiry loop reads the schedule only. A budget taken off it by a process that died before
    scheduling it again is scheduled again by the idle check (it is active while it holds
    reservations); one that lost its active mark too (a Redis failover) by its next use."""
    await create(client, budget_id, 1_000, sub_buckets=2)
    r = await reserve(client, budget_id, f"{budget_id}-r", 40, ttl_ms=600)
    assert r.code == OK
    active_key, due_key = _keys(busy_center)
    with Redis.from_url(redis_url, decode_responses=True) as redis:
        assert redis.zscore(due_key, budget_id) == r.expires_at_ms
        if lost != "nothing":
            redis.zrem(due_key, budget_id)
        if lost == "its schedule entry and active mark":
            redis.zrem(active_key, budget_id)

    async def released() -> bool:
        return (await get(client, budget_id)).reserved == 0

    if lost == "its schedule entry and active mark":
        await asyncio.sleep(1.0)
        assert not await released()  # nothing knows of it until it is used again
        assert (await deduct(client, budget_id, f"{budget_id}-d", 1)).code == OK
    # TTL, then at most an idle check (1 s) and an expiry round on a loaded machine.
    await _until(released, 5, f"a reservation ({lost} lost) did not expire")
    b = await get(client, budget_id)
    assert (b.reserved, b.available) == (0, 999 if lost == "its schedule entry and active mark" else 1_000)
