"""Whether a budget has anything left to issue: its sold-out mark (docs/center.md#sell-out).

A budget is marked sold out when the center decided, on fresh reads, that main, every sub-bucket
and every agent's holding hold nothing and nothing is moving between them. The mark lives in
Redis next to main, so every center process answers from it: a deduction on a marked budget is
refused at once, with no lock, no reclaim round and no read of the agents' holdings, and the
agents are told over their sessions so that they refuse locally without calling the center.

Everything that can make budget available again (a return, a cancel, an expiry, a confirm below
the reserved amount, a top-up, a release, a settlement, a rebuild) calls ``changed`` once its
effect landed: that bumps main's ``supply`` version and drops the mark, and the agents hear it at
once. A sold-out decision is marked only if the supply version it read before its balances is
still current (sellout_mark.lua), so an event that landed while the decision was being taken
either keeps the mark from being set or drops it right after. A mark lapses after ``ttl_ms``
unless a fresh check confirms it: a clear lost with a crashed process cannot keep a budget
refused for longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from quota_center.buckets.store import BucketStore
from quota_center.metrics import SOLD_OUT_CHANGES

log = logging.getLogger(__name__)

# How long a mark holds unless confirmed again; confirmed when less than half of it is left.
SOLD_OUT_TTL_MS = 5000
# A clear that failed (Redis unreachable) is tried again this often, this many times.
CLEAR_RETRIES = 10
CLEAR_RETRY_S = 0.1


@dataclass(frozen=True, slots=True)
class Availability:
    """A budget's sold-out state. ``version`` grows with every change, across rebuilds:
    (main's generation << 32) + its supply version; agents keep the newest they heard."""

    budget_id: str
    sold_out: bool
    version: int
    supply: int = 0  # main's supply version, what a mark must find unchanged
    ttl_ms: int = 0  # how long the mark still holds

    @property
    def due_for_check(self) -> bool:
        """A mark with less than half its time left: confirm it (or drop it) now."""
        return self.sold_out and self.ttl_ms < SOLD_OUT_TTL_MS // 2


Announce = Callable[[Availability], Coroutine[Any, Any, None]]


def _version(gen: int, supply: int) -> int:
    return (gen << 32) + supply


class SellOut:
    def __init__(self, buckets: BucketStore, *, ttl_ms: int = SOLD_OUT_TTL_MS) -> None:
        self.buckets = buckets
        self.ttl_ms = ttl_ms
        # Told of every mark and clear this process makes (the agents connected here).
        self.listeners: list[Announce] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, budget_id: str) -> Availability:
        gen, supply, marked, ttl = await self.buckets.sell_out_read(budget_id)
        return Availability(budget_id, marked, _version(gen, supply), supply, ttl)

    async def mark(self, seen: Availability) -> bool:
        """Mark the budget sold out if its supply is still what ``seen`` read; True if marked."""
        try:
            r = await self.buckets.sell_out_mark(seen.budget_id, seen.supply, self.ttl_ms)
        except Exception as exc:  # the refusal it comes with stands: marking is only a shortcut
            log.warning("budget %s: marking it sold out failed: %s", seen.budget_id, exc)
            return False
        if r.status != "OK":
            return False
        gen = seen.version >> 32
        if not seen.sold_out:
            SOLD_OUT_CHANGES.labels("sold_out").inc()
            log.info("budget %s is sold out", seen.budget_id)
        self._announce(Availability(seen.budget_id, True, _version(gen, r.value), r.value, self.ttl_ms))
        return True

    async def changed(self, budget_id: str) -> None:
        """Budget may be available again: drop the mark (and tell the agents if there was one).

        Never raises: the caller's effect has landed and its answer must not turn into an error.
        If Redis cannot be reached the clear is tried again in the background; should that fail
        too, the mark lapses within its time to live.
        """
        try:
            await self._clear(budget_id)
        except Exception as exc:
            log.warning("budget %s: dropping its sold-out mark failed (%s); retrying", budget_id, exc)
            self._spawn(self._clear_later(budget_id))

    async def _clear(self, budget_id: str) -> None:
        was, supply, gen = await self.buckets.sell_out_clear(budget_id)
        if was:
            SOLD_OUT_CHANGES.labels("available").inc()
            log.info("budget %s is available again", budget_id)
            self._announce(Availability(budget_id, False, _version(gen, supply), supply))

    async def _clear_later(self, budget_id: str) -> None:
        for attempt in range(CLEAR_RETRIES):
            await asyncio.sleep(CLEAR_RETRY_S * (attempt + 1))
            try:
                await self._clear(budget_id)
                return
            except Exception:
                continue
        log.warning(
            "budget %s: its sold-out mark could not be dropped; it lapses within %d ms",
            budget_id,
            self.ttl_ms,
        )

    def _announce(self, availability: Availability) -> None:
        for listener in self.listeners:
            self._spawn(listener(availability))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def logged() -> None:
            try:
                await work
            except Exception:
                log.warning("telling the agents of a sold-out mark failed", exc_info=True)

        task = asyncio.get_running_loop().create_task(logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
