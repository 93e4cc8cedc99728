"""A mixed workload for the no-oversell tests: deductions, returns, reserves, confirms, cancels
and expiries racing on one budget, in three phases with an audit after each.

Shared by the single-Redis center (tests/quota_center/spending/test_mixed.py) and the Redis Cluster
(tests/quota_center/cluster/test_mixed.py); the center's own expiry loop releases the short reservations, so
the center under test must run it (the default ``expiry_interval_ms``).

The caller's book records only what the answers said happened. At the end every number the
center reports must equal the book's: consumed = served deductions + confirms - returns,
reserved = 0 once every reservation ended, and the budget drained to exactly zero.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from tests.helpers.calls import EXISTS, INSUFFICIENT, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import Client
from tests.helpers.reservations import EXPIRED, cancel, confirm, reserve

SHORT_TTL_MS = 150
LONG_TTL_MS = 120_000


@dataclass
class Book:
    """What the answers of one mixed run said happened, as amounts (not a log of calls with their
    times, like ``tests.helpers.regions.Book``, which the false-refusal check needs)."""

    total: int
    consumed: int = 0
    deductions: dict[str, int] = field(default_factory=dict)  # rid -> still refundable
    long_held: dict[str, int] = field(default_factory=dict)
    short_held: dict[str, int] = field(default_factory=dict)
    left_to_expire: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    returned: int = 0
    expired: int = 0
    peak: int = 0


async def _end(
    client: Client, budget_id: str, rid: str, amount: int, short: bool, rng: random.Random, book: Book
) -> None:
    """Confirm part (sometimes twice at once) or cancel one reservation; book what the answer says."""
    if rng.random() < 0.6:
        take = rng.randint(1, amount)
        copies = 2 if rng.random() < 0.3 else 1
        answers = await asyncio.gather(*(confirm(client, budget_id, rid, take) for _ in range(copies)))
        codes = sorted(a.code for a in answers)
        allowed = [[OK], [OK, EXISTS]] + ([[EXPIRED], [EXPIRED, EXPIRED]] if short else [])
        assert codes in allowed, (rid, short, answers)
        if OK in codes:
            assert all((a.amount, a.released) == (take, amount - take) for a in answers), answers
            book.consumed += take
        else:
            book.expired += 1
    else:
        answer = await cancel(client, budget_id, rid)
        assert answer.code in ((OK, EXPIRED) if short else (OK,)), (rid, short, answer)
        assert answer.released == (amount if answer.code == OK else 0), answer
        if answer.code == EXPIRED:
            book.expired += 1
    book.ended.add(rid)


async def _worker(client: Client, budget_id: str, w: int, ops: int, rng: random.Random, book: Book) -> None:
    for i in range(ops):
        rid = f"{budget_id}-w{w}-{i}"
        roll = rng.random()
        if roll < 0.35:
            d = await deduct(client, budget_id, rid, rng.randint(1, 60))
            assert d.code in (OK, INSUFFICIENT), d
            if d.code == OK:
                book.consumed += d.amount
                book.deductions[rid] = d.amount
        elif roll < 0.5 and book.deductions:
            source = rng.choice(sorted(book.deductions))
            left = book.deductions[source]
            if left == 0:
                continue
            amount = rng.randint(1, left)
            book.deductions[source] = left - amount  # claimed before the await: no other worker takes it
            r = await refund(client, budget_id, f"{rid}-ret", source, amount)
            assert r.code == OK, r
            book.consumed -= amount
            book.returned += amount
        elif roll < 0.8:
            amount = rng.randint(1, 80)
            short = rng.random() < 0.4
            r = await reserve(client, budget_id, rid, amount, ttl_ms=SHORT_TTL_MS if short else LONG_TTL_MS)
            assert r.code in (OK, INSUFFICIENT), r
            if r.code == OK:
                # Some short reservations are never ended by the workers, so that every run has
                # expiries however fast its confirms and cancels come.
                abandoned = short and rng.random() < 0.3
                (book.left_to_expire if abandoned else book.short_held if short else book.long_held)[rid] = (
                    amount
                )
        else:
            short = bool(book.short_held) and (not book.long_held or rng.random() < 0.5)
            pool = book.short_held if short else book.long_held
            if pool:
                rid = rng.choice(sorted(pool))
                await _end(client, budget_id, rid, pool.pop(rid), short, rng, book)


async def _watch(client: Client, budget_id: str, book: Book, stop: asyncio.Event) -> None:
    """'Never' means at every instant: consumed + reserved + in doubt stays within the total."""
    while not stop.is_set():
        b = await get(client, budget_id)
        assert b.consumed + b.reserved + b.in_doubt <= book.total, b
        book.peak = max(book.peak, b.consumed + b.reserved)
        await asyncio.sleep(0.005)


async def run_mixed(client: Client, budget_id: str, *, total: int, sub_buckets: int, seed: int) -> Book:
    """Run the three phases; assert the book against the center and the audit after each."""
    rng = random.Random(seed)
    await create(client, budget_id, total, sub_buckets=sub_buckets, min_slice=10, max_slice=300)
    book = Book(total)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(client, budget_id, book, stop))
    try:
        # Phase 1: everything at once; short reservations may expire under their confirms.
        await asyncio.gather(
            *(_worker(client, budget_id, w, 40, random.Random(rng.random()), book) for w in range(10))
        )
        b = await get(client, budget_id)
        assert b.consumed == book.consumed, (b, book.consumed)
        assert b.consumed + b.reserved <= total
        await assert_balanced(client, budget_id)

        # Phase 2: the short TTLs pass and the center's expiry loop releases them, each once;
        # a late confirm is EXPIRED, and nothing else moved.
        long_reserved = sum(book.long_held.values())
        book.short_held.update(book.left_to_expire)
        for _ in range(100):
            b = await get(client, budget_id)
            if b.reserved == long_reserved:
                break
            await asyncio.sleep(0.05)
        assert (b.consumed, b.reserved) == (book.consumed, long_reserved), (b, book)
        for rid in sorted(book.short_held):
            assert (await confirm(client, budget_id, rid, 1)).code == EXPIRED
            book.ended.add(rid)
            book.expired += 1
        book.short_held.clear()
        assert (await get(client, budget_id)).reserved == long_reserved
        await assert_balanced(client, budget_id)

        # Phase 3: end the long reservations while deductions race for what they release, then
        # take exactly what is left: the budget ends at zero, every unit issued once.
        held = sorted(book.long_held.items())
        book.long_held.clear()
        racing = [deduct(client, budget_id, f"{budget_id}-tail{i}", rng.randint(1, 120)) for i in range(60)]
        results = await asyncio.gather(
            *(_end(client, budget_id, rid, amount, False, rng, book) for rid, amount in held), *racing
        )
        for r in results:
            if r is not None:
                assert r.code in (OK, INSUFFICIENT), r
                book.consumed += r.amount
        b = await get(client, budget_id)
        assert (b.consumed, b.reserved, b.in_doubt) == (book.consumed, 0, 0), b
        last = await deduct(client, budget_id, f"{budget_id}-last", b.available) if b.available else None
        if last is not None:
            assert (last.code, last.amount) == (OK, b.available), last
            book.consumed += last.amount
        assert (await deduct(client, budget_id, f"{budget_id}-over", 1)).code == INSUFFICIENT
    finally:
        stop.set()
        await watcher

    b = await get(client, budget_id)
    assert (b.consumed, b.reserved, b.in_doubt, b.available) == (total, 0, 0, 0), b
    assert book.consumed == total
    await assert_balanced(client, budget_id)
    return book
