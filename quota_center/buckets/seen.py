"""Which request ids were served in the days kept, in a few bytes each (lua/seen_lib.lua).

Redis keeps a request's claim and record for ``request_window_s`` only (minutes: retries in
flight and concurrent duplicates). An id whose claim is gone is tested here: "no" means it was
never served within the retention and is new; "maybe" sends the request to the spend log in
PostgreSQL (recovery/recall.py), which answers with what the id did, or says it did nothing (a
false "maybe", rare by design). See docs/center.md#request-ids.

Ids are spread over ``SHARDS`` shards, each under a hash tag of its own (a Redis Cluster spreads
them), and within a shard kept per UTC day, so that a day leaves with its keys' TTL.

A shard's mark (``<prefix>:since``) says from which day on its filters hold every id served. The
first time a ledger's filters are used, every shard is marked complete from the beginning (there
was nothing before: a new ledger, or one whose requests Redis kept for the whole retention, as
before the window existed), and the ledger notes it. A shard found without its mark after that
was lost by Redis (a flush, a cluster node restarted empty): it is marked from today, and until
that day is older than the days kept each of its ids is looked up in the spend log, so an old
retry is never taken for new.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quota_center.buckets.scripts import RedisClient, Scripts
from quota_center.clock import DAY_S, Clock, days_kept

log = logging.getLogger(__name__)

SHARDS = 16
# Bits tested and set per id; bits per id of a full bitmap: with 10 of 15, a full bitmap answers
# "maybe" for about 1 id in 1,400 it never held.
K = 10
BITS = 15
# The first bitmap of a shard's day holds BASE ids (30 KB); each next one GROWTH times more, so a
# busy day has few bitmaps to test and a quiet one costs little. A Redis string holds 2^32 bits.
BASE = 16_384
GROWTH = 4
MOST = 2**32


@dataclass(frozen=True, slots=True)
class Place:
    """Where an id lives in the filters: its shard and the two hashes its bits come from."""

    shard: int
    h1: int
    h2: int


def place(request_id: str) -> Place:
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=16).digest()
    h1 = int.from_bytes(digest[1:5], "big")
    h2 = int.from_bytes(digest[5:9], "big") | 1
    return Place(digest[0] % SHARDS, h1, h2)


class Seen:
    def __init__(
        self,
        redis: RedisClient,
        scripts: Scripts,
        ledger_id: str,
        retention_s: int,
        clock: Clock,
        base: int = BASE,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.ledger_id = ledger_id
        self.days = days_kept(retention_s)
        self.clock = clock
        self.base = base  # ids in a shard's first bitmap of a day
        # The ledger's note that its filters were started (set by the center; none: never noted).
        self.started: Callable[[], Awaitable[bool]] | None = None
        self.note_started: Callable[[], Awaitable[None]] | None = None

    def prefix(self, shard: int) -> str:
        return "quota:seen:{" + self.ledger_id + ":" + str(shard) + "}"

    def args(self, request_id: str) -> list[str | int]:
        """The filter's parameters for ``request_id`` (seen_lib.lua's ARGV, in its order)."""
        p = place(request_id)
        ttl = (self.days + 1) * DAY_S
        return [
            self.prefix(p.shard),
            self.clock.day(),
            self.days,
            p.h1,
            p.h2,
            K,
            self.base,
            GROWTH,
            BITS,
            MOST,
            ttl,
        ]

    def mark_key(self, shard: int) -> str:
        return f"{self.prefix(shard)}:since"

    async def check(self, request_id: str, *, add: bool) -> bool:
        """True if ``request_id`` may have been served within the days kept; ``add`` adds it to
        today's filter in the same step."""
        args = self.args(request_id)
        counter = f"{args[0]}:{args[1]}"
        while True:
            found = int(await self.scripts.run("seen", [counter], ["1" if add else "0", *args]))
            if found != 2:
                return found == 1
            await self.mark(request_id)

    async def mark(self, request_id: str) -> None:
        """Set the mark of ``request_id``'s shard, found missing (see the module's docstring)."""
        shard = place(request_id).shard
        if self.started is not None and not await self.started():
            for s in range(SHARDS):
                await self.redis.set(self.mark_key(s), 0, nx=True)
            if self.note_started is not None:
                await self.note_started()
            return
        today = self.clock.day()
        if await self.redis.set(self.mark_key(shard), today, nx=True):
            log.warning(
                "request-id filters: shard %d was lost by Redis; its ids are looked up in the spend log"
                " until day %d has left the %d days kept",
                shard,
                today,
                self.days,
            )
