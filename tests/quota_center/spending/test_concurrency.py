"""Reserves, confirms, cancels, expiries and deductions racing on a small budget: never more
consumed + reserved than the total, the audit balanced after each phase, and every reservation
ended exactly once (the reserved units come back to zero, never below)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from redis.asyncio import Redis

from quota.v1 import common_pb2 as pb
from quota_center.buckets import keys
from tests.helpers.calls import EXISTS, INSUFFICIENT, OK, assert_balanced, create, deduct, get
from tests.helpers.center import Client
from tests.helpers.reservations import EXPIRED, cancel, confirm, reserve
from tests.quota_center.spending.conftest import Local

TOTAL = 2_000
SUB_BUCKETS = 3
SHORT_TTLS = (30, 60, 120)
LONG_TTL = 120_000


@dataclass
class Ledger:
    """What the callers were told."""

    consumed: int = 0
    long_held: dict[str, int] = field(default_factory=dict)
    short_held: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)


async def snapshot(redis: Redis, budget_id: str) -> list[tuple[int, int]]:
    """(consumed, reserved) of every sub-bucket, read in one MULTI/EXEC: one instant."""
    async with redis.pipeline(transaction=True) as pipe:
        for i in range(SUB_BUCKETS):
            pipe.hmget(keys.sub_keys(budget_id, i).state, "consumed", "reserved")
        replies = await pipe.execute()
    return [(int(c or 0), int(r or 0)) for c, r in replies]


async def watch(redis: Redis, budget_id: str, stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        subs = await snapshot(redis, budget_id)
        assert all(c >= 0 and r >= 0 for c, r in subs), subs
        assert sum(c + r for c, r in subs) <= TOTAL, subs
        seen.append(sum(r for _, r in subs))
        await asyncio.sleep(0.002)


async def sweep(local: Local, budget_id: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await local.expiry.expire_budget(budget_id)
        await asyncio.sleep(0.01)


async def end(
    client: Client, budget_id: str, rid: str, amount: int, rng: random.Random, book: Ledger
) -> None:
    """Confirm part (sometimes twice at once) or cancel; record what the answer says happened."""
    if rng.random() < 0.5:
        take = rng.randint(1, amount)
        copies = 2 if rng.random() < 0.3 else 1
        answers = await asyncio.gather(*(confirm(client, budget_id, rid, take) for _ in range(copies)))
        codes = sorted(a.code for a in answers)
        assert codes in ([OK], [OK, EXISTS], [EXPIRED], [EXPIRED, EXPIRED]), codes
        if OK in codes:
            assert all((a.amount, a.released) == (take, amount - take) for a in answers)
            book.consumed += take
    else:
        answer = await cancel(client, budget_id, rid)
        assert answer.code in (OK, EXPIRED), answer
        assert answer.released == (amount if answer.code == OK else 0)
    book.ended.add(rid)


async def worker(client: Client, budget_id: str, w: int, rng: random.Random, book: Ledger) -> None:
    for i in range(30):
        rid = f"{budget_id}-w{w}-{i}"
        roll = rng.random()
        if roll < 0.3:
            amount = rng.randint(1, 40)
            d = await deduct(client, budget_id, rid, amount)
            assert d.code in (OK, INSUFFICIENT), d
            book.consumed += d.amount
        elif roll < 0.75:
            amount = rng.randint(1, 60)
            short = rng.random() < 0.4
            ttl = rng.choice(SHORT_TTLS) if short else LONG_TTL
            r = await reserve(client, budget_id, rid, amount, ttl_ms=ttl)
            assert r.code in (OK, INSUFFICIENT), r
            if r.code == OK:
                (book.short_held if short else book.long_held)[rid] = amount
        else:
            pool = book.long_held or book.short_held
            if pool:
                rid = rng.choice(sorted(pool))
                amount = pool.pop(rid)
                await end(client, budget_id, rid, amount, rng, book)


async def test_a_concurrent_mix_never_oversells_and_ends_each_reservation_once(
    client: Client, budget_id: str, local: Local, redis_url: str
) -> None:
    rng = random.Random(6)
    await create(client, budget_id, TOTAL, sub_buckets=SUB_BUCKETS, min_slice=20, max_slice=200)
    redis = Redis.from_url(redis_url, decode_responses=True)
    book = Ledger()
    stop = asyncio.Event()
    seen: list[int] = []
    background = [
        asyncio.create_task(watch(redis, budget_id, stop, seen)),
        asyncio.create_task(sweep(local, budget_id, stop)),
    ]
    try:
        # Phase 1: everything at once, expiries included.
        await asyncio.gather(
            *(worker(client, budget_id, w, random.Random(rng.random()), book) for w in range(8))
        )
        b = await get(client, budget_id)
        assert b.consumed == book.consumed
        assert b.reserved <= sum(book.long_held.values()) + sum(book.short_held.values())
        assert b.consumed + b.reserved <= TOTAL
        await assert_balanced(client, budget_id)

        # Phase 2: the short TTLs pass; the sweep releases what no call did.
        await asyncio.sleep(max(SHORT_TTLS) / 1000 + 0.05)
        local.clock.at = None
        await local.expiry.expire_budget(budget_id)
        b = await get(client, budget_id)
        assert (b.consumed, b.reserved) == (book.consumed, sum(book.long_held.values()))
        await assert_balanced(client, budget_id)
        for rid, amount in book.short_held.items():  # expired, each released once already
            assert (await confirm(client, budget_id, rid, amount)).code == EXPIRED
            book.ended.add(rid)

        # Phase 3: settle the rest concurrently, racing deductions for what comes back.
        held = sorted(book.long_held.items())
        book.long_held.clear()
        extra = [deduct(client, budget_id, f"{budget_id}-tail{i}", 25) for i in range(10)]
        results = await asyncio.gather(
            *(end(client, budget_id, rid, amount, rng, book) for rid, amount in held), *extra
        )
        book.consumed += sum(r.amount for r in results if isinstance(r, pb.DeductResponse))
    finally:
        stop.set()
        await asyncio.gather(*background)
        await redis.aclose()

    local.clock.at = None
    assert await local.expiry.expire_budget(budget_id) == 0
    b = await get(client, budget_id)
    assert (b.consumed, b.reserved, b.in_doubt) == (book.consumed, 0, 0)
    assert b.available == TOTAL - book.consumed
    assert max(seen, default=0) > 0, "reservations were held while the watcher looked"
    assert book.ended
    await assert_balanced(client, budget_id)
