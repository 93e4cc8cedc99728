"""Which budgets have something to do: the active set and the schedule of reservation expiries.

A platform keeps far more budgets than it uses at any moment. The background loops (sweeper,
filler, agents' leases, per-budget gauges) walk only the **active set**, a Redis sorted set of
budget id -> when it last had something to do (ms); the expiry loop walks only the **schedule**,
budget id -> the earliest time one of its reservations may expire. Both are shared by every
center process, so a budget made active on one is looked after by all, and a process that dies
leaves nothing unattended. A budget with nothing to do costs the loops nothing: no Redis command,
no PostgreSQL query (docs/center.md#activity).

* A budget becomes active when budget moves between its holders (every ledgered transfer: refills,
  grants to agents, releases, merges), when the center serves it a deduction or a reservation, and
  when an operator changes it. Marks are rate-limited per process (``MARK_EVERY_MS``), so a busy
  budget costs one ZADD a second, not one per request.
* It leaves once nothing happened for ``idle_ms`` and nothing is pending: no transfer between its
  holders, no agent holding a balance or a live lease (``busy``, checked only then). Closing a
  budget takes it out at once.
* A reservation schedules its budget at its expiry (ZADD LT: the earliest wins). The expiry loop
  takes a due budget off the schedule *before* it looks at its reservations and puts it back at
  the next one it finds, so a reservation made meanwhile is either seen or schedules itself.
* If Redis lost the sets (a flush, a failover without persistence), every budget not closed is
  marked active again (``SEEDED`` is gone too), and idles out from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple, cast

from quota_center.buckets import keys
from quota_center.buckets.scripts import RedisClient, Scripts
from quota_center.buckets.store import BucketStore
from quota_center.budgets.registry import Registry
from quota_center.errors import UnknownBudget
from quota_center.holders import MAIN, sub_holder
from quota_center.loop_failures import LoopFailures, every
from quota_center.transfers.protocol import now_ms
from quota_rules.loops import stop_if_cancelled

log = logging.getLogger(__name__)

# The keys, each followed by the ledger's identity (ledgers sharing one Redis keep theirs apart):
# the active set, the schedule, and a mark set once the active set holds every budget that may
# have something to do (at the first start, and again after Redis lost it).
ACTIVE = "quota:active:"
DUE = "quota:due:"
SEEDED = "quota:seeded:"
# A process marks a budget active at most this often.
MARK_EVERY_MS = 1_000
# A request's mark waits at most this long, to go out with the other budgets' in one command.
FLUSH_MARKS_S = 0.05
# Budgets looked at per call when pruning and seeding.
PAGE = 1_000

Busy = Callable[[str], Awaitable[bool]]


class Changes(NamedTuple):
    touched: set[str]  # marked active by a request
    left: set[str]  # taken out of the active set (idle, or closed)


Ids = Callable[[], Awaitable[list[str]]]


class Activity:
    def __init__(
        self,
        redis: RedisClient,
        scripts: Scripts,
        ledger_id: str,
        *,
        idle_ms: int = 60_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.idle_ms = idle_ms
        self.active_key = ACTIVE + ledger_id
        self.due_key = DUE + ledger_id
        self.seeded_key = SEEDED + ledger_id
        self.redis = redis
        self.scripts = scripts
        self.clock = clock
        self._marked: dict[str, int] = {}  # budget -> when this process last marked it
        self._unsent: dict[str, int] = {}  # marks of touch_soon not sent yet
        # Since the last ``take_changes``: budgets touch_soon marked, budgets this process let go.
        self._changes = Changes(set(), set())
        self._collect = False  # only once someone takes them (the filler may be off)
        self._sending: asyncio.Task[None] | None = None

    async def touch(self, budget_id: str, *, within_ms: int = MARK_EVERY_MS) -> None:
        """Mark ``budget_id`` active now, unless this process marked it within ``within_ms``."""
        now = self.clock()
        if now - self._marked.get(budget_id, -within_ms) < within_ms:
            return
        await self.redis.zadd(self.active_key, {budget_id: now}, gt=True)
        self._marked[budget_id] = now  # only once it is marked: a failed mark is tried again

    async def ensure(self, budget_id: str) -> None:
        """Make sure ``budget_id`` is in the active set before budget moves between its holders.

        A budget this process marked within half ``idle_ms`` is in it still: it can leave only
        once its mark is ``idle_ms`` old, and never while a transfer of it is pending. An error
        here stops the transfer before its take, so nothing can be left pending unswept."""
        await self.touch(budget_id, within_ms=self.idle_ms // 2)

    def touch_soon(self, budget_id: str) -> None:
        """``touch`` without waiting for it, on a request's path: the mark tells the filler the
        budget is in use, and a request must not wait for (or fail with) the key's Redis shard.

        The marks of all budgets go out together, one ZADD every ``FLUSH_MARKS_S``: with
        hundreds of budgets in use, a command (and a task) per budget a second would cost more
        than the deductions' own share of the process."""
        now = self.clock()
        if now - self._marked.get(budget_id, -MARK_EVERY_MS) < MARK_EVERY_MS:
            return
        # Noted at once: the requests that follow before the mark is written send no mark of their
        # own (a batch of ten thousand would otherwise send ten thousand).
        self._marked[budget_id] = now
        self._unsent[budget_id] = now
        if self._collect:
            self._changes.touched.add(budget_id)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_marks())

    async def flush(self) -> None:
        """Wait for the marks ``touch_soon`` has not written yet (a stopping center's last)."""
        sending = self._sending
        if sending is not None and not sending.done():
            with contextlib.suppress(Exception):
                await sending

    def take_changes(self) -> Changes:
        """What this process changed in the active set since the last call: the filler, which reads
        the set once a second, learns at once that a quiet budget is used again or has left."""
        self._collect = True
        changes, self._changes = self._changes, Changes(set(), set())
        return changes

    async def _send_marks(self) -> None:
        await asyncio.sleep(FLUSH_MARKS_S)
        marks, self._unsent = self._unsent, {}
        try:
            await self.redis.zadd(self.active_key, dict(marks), gt=True)
        except Exception as exc:  # the next requests try again; the loops are no worse off
            for budget_id, now in marks.items():
                if self._marked.get(budget_id) == now:
                    del self._marked[budget_id]
            log.debug("marking %d budgets active failed: %s", len(marks), exc)

    async def close(self, budget_id: str) -> None:
        """Take a closed budget out of the active set: no loop looks at it again."""
        self._marked.pop(budget_id, None)
        self._unsent.pop(budget_id, None)
        await self.flush()  # marks taken before this close may include the budget: they land first
        await self.redis.zrem(self.active_key, budget_id)
        self._left(budget_id)

    async def active(self) -> list[str]:
        """The budgets the background loops look after."""
        return [str(m) for m in await self.redis.zrange(self.active_key, 0, -1)]

    async def marks(self) -> dict[str, int]:
        """The active budgets, with when each was last marked (ms)."""
        rows = await self.redis.zrange(self.active_key, 0, -1, withscores=True)
        return {str(m): int(s) for m, s in cast(list[tuple[str, float]], rows)}

    async def prune(self, idle_ms: int, busy: Busy) -> int:
        """Drop the budgets idle for ``idle_ms`` with nothing pending; return how many left."""
        cutoff = self.clock() - idle_ms
        dropped = 0
        while True:
            stale = await self.redis.zrangebyscore(self.active_key, "-inf", cutoff, 0, PAGE, withscores=True)
            for member, score in cast(list[tuple[str, float]], stale):
                budget_id = str(member)
                if await busy(budget_id):
                    await self.redis.zadd(
                        self.active_key, {budget_id: max(self.clock(), cutoff + 1)}, gt=True
                    )
                    continue
                # Only if nobody marked it meanwhile (the score is still the one read); either way
                # it leaves the range read.
                if await self.scripts.run("zrem_if", [self.active_key], [budget_id, int(score)]):
                    self._marked.pop(budget_id, None)
                    self._left(budget_id)
                    dropped += 1
            if len(stale) < PAGE:
                return dropped
            stop_if_cancelled()

    def _left(self, budget_id: str) -> None:
        if self._collect:
            self._changes.left.add(budget_id)
            self._changes.touched.discard(budget_id)

    async def seed(self, ids: Ids) -> int:
        """Mark every budget ``ids`` gives active, once: at the first start, or after Redis lost the
        set. Returns how many were marked (0: already seeded)."""
        if await self.redis.exists(self.seeded_key):
            return 0
        budget_ids = await ids()
        now = self.clock()
        for start in range(0, len(budget_ids), PAGE):
            await self.redis.zadd(
                self.active_key, dict.fromkeys(budget_ids[start : start + PAGE], now), gt=True
            )
        await self.redis.set(self.seeded_key, now)
        log.info("active set seeded with %d budgets", len(budget_ids))
        return len(budget_ids)

    async def run(self, busy: Busy, ids: Ids, *, idle_ms: int, interval_s: float) -> None:
        """Seed the active set when Redis does not have it, and let idle budgets go, forever."""

        async def step() -> None:
            await self.seed(ids)
            await self.prune(idle_ms, busy)

        await every(interval_s, step, LoopFailures("activity"))

    async def expiring(self, budget_id: str, at_ms: int) -> None:
        """A reservation of ``budget_id`` expires at ``at_ms``: schedule it then, or earlier."""
        await self.redis.zadd(self.due_key, {budget_id: at_ms}, lt=True)

    async def due(self, now: int, limit: int = PAGE) -> list[tuple[str, int]]:
        """Budgets with a reservation that may have expired by ``now``, and when they were due."""
        rows = await self.redis.zrangebyscore(self.due_key, "-inf", now, 0, limit, withscores=True)
        return [(str(m), int(s)) for m, s in cast(list[tuple[str, float]], rows)]

    async def taken(self, budget_id: str, due_ms: int) -> bool:
        """Take a due budget off the schedule, unless it was scheduled earlier meanwhile."""
        return bool(await self.scripts.run("zrem_if", [self.due_key], [budget_id, due_ms]))


class Pending:
    """Whether a budget idle for ``idle_ms`` still has something for the loops to do (``prune``'s
    check, run only on such budgets): a transfer between its holders not finished (the sweeper's),
    an agent holding a balance (its lease may run out), or a reservation (it must expire: the
    budget is scheduled at its first one, repairing a schedule a crash interrupted)."""

    def __init__(self, registry: Registry, buckets: BucketStore, activity: Activity) -> None:
        self.registry = registry
        self.buckets = buckets
        self.activity = activity

    async def busy(self, budget_id: str) -> bool:
        try:
            meta = await self.registry.get(budget_id)
        except UnknownBudget:
            return False
        if await self.buckets.budget_state(budget_id) == "closed":
            return False
        holders = [MAIN, *(sub_holder(i) for i in range(meta.sub_buckets))]
        agents = await self.buckets.agent_holders(budget_id)
        for holder in holders + agents:
            view = await self.buckets.read(budget_id, holder)
            if view is not None and (view.pending or (holder in agents and view.balance > 0)):
                return True
        for index in range(meta.sub_buckets):
            first = await self.buckets.redis.zrange(
                keys.sub_keys(budget_id, index).expiries, 0, 0, withscores=True
            )
            if first:
                await self.activity.expiring(budget_id, int(first[0][1]))
                return True
        return False
