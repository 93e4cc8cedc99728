"""Typed calls on the reservation scripts (reserve, confirm, cancel, expire).

A reservation lives next to the sub-bucket that serves it: its amount in the
bucket's ``reserved`` field, its record under the sub-bucket's tag (``request``, the key
of request records, so a confirmed reservation is a deduction ``Return`` can
refund), and its id in the sub-bucket's expiry set (``expiries``),
scored by when it expires. Every ``now`` is the center's clock: see
``quota_center.spending.reservations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from quota_center.buckets import keys
from quota_center.buckets.store import BucketStore, Outcome


def expiry_key(budget_id: str, index: int) -> str:
    """The expiry set of sub-bucket ``index``: reservation id -> expires_at_ms."""
    return keys.sub_keys(budget_id, index).expiries


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one expiry call did on one sub-bucket."""

    lost: bool = False
    looked_at: int = 0
    released: int = 0
    units: int = 0
    removed: int = 0


def _outcome(reply: list[object]) -> Outcome:
    """``{status, value, extra[, gen]}`` as an Outcome (a missing integer is 0)."""
    value, extra, gen = (int(str(v)) for v in [*reply[1:4], 0, 0, 0][:3])
    return Outcome(str(reply[0]), value, extra, gen)


class ReservationStore:
    """Reservation operations on a budget's sub-buckets, through the bucket store's scripts."""

    def __init__(self, buckets: BucketStore) -> None:
        self.buckets = buckets

    async def claim(self, request_id: str, fingerprint: str) -> str | None:
        """Bind ``request_id`` to ``fingerprint`` unless bound already; return the earlier binding."""
        return await self.buckets.claim(request_id, fingerprint)

    async def reserve(
        self, budget_id: str, index: int, request_id: str, amount: int, expires_at_ms: int, gen: int = 0
    ) -> Outcome:
        """``Outcome(status, amount, expires_at_ms)``; ``gen`` (0: any) is the generation the
        caller expects the sub-bucket in. See reserve.lua."""
        sub = keys.sub_keys(budget_id, index)
        reply = await self.buckets.scripts.run(
            "reserve",
            [sub.state, sub.request(request_id), expiry_key(budget_id, index)],
            [amount, expires_at_ms, request_id, gen],
        )
        return _outcome(reply)

    async def confirm(
        self, budget_id: str, index: int, reservation_id: str, amount: int, now_ms: int
    ) -> Outcome:
        """``Outcome(status, amount, released, gen)``; see confirm.lua."""
        sub = keys.sub_keys(budget_id, index)
        reply = await self.buckets.scripts.run(
            "confirm",
            [sub.state, sub.request(reservation_id), expiry_key(budget_id, index)],
            [amount, now_ms, reservation_id, self.buckets.retention_s],
        )
        return _outcome(reply)

    async def cancel(self, budget_id: str, index: int, reservation_id: str, now_ms: int) -> Outcome:
        """``Outcome(status, released)``; see cancel.lua."""
        sub = keys.sub_keys(budget_id, index)
        reply = await self.buckets.scripts.run(
            "cancel",
            [sub.state, sub.request(reservation_id), expiry_key(budget_id, index)],
            [now_ms, reservation_id, self.buckets.retention_s],
        )
        return _outcome(reply)

    async def first_expiry(self, budget_id: str, index: int) -> int | None:
        """When sub-bucket ``index``'s earliest reservation expires (None: it holds none)."""
        first = await self.buckets.redis.zrange(expiry_key(budget_id, index), 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def expire_due(self, budget_id: str, index: int, now_ms: int, limit: int) -> Sweep:
        """Release up to ``limit`` reservations of sub-bucket ``index`` that expired by ``now_ms``."""
        zset = expiry_key(budget_id, index)
        due = [str(m) for m in await self.buckets.redis.zrangebyscore(zset, "-inf", now_ms, 0, limit)]
        if not due:
            return Sweep()
        sub = keys.sub_keys(budget_id, index)
        reply = await self.buckets.scripts.run(
            "expire",
            [sub.state, zset, *(sub.request(rid) for rid in due)],
            [now_ms, self.buckets.retention_s, *due],
        )
        released, units, removed = (int(str(v)) for v in reply[1:4])
        return Sweep(str(reply[0]) == "LOST", len(due), released, units, removed)
