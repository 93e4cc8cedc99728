"""Several agents' sessions send random sequences of valid and invalid reports, and after every
step no budget has handed out more than its total, no holding has consumed less than nothing, and
the audit balances.

Seeded: ``SESSION_FUZZ_SEED`` replays a run; CI (``CI`` set) uses a fixed seed, elsewhere each run
draws one and prints it.
"""

from __future__ import annotations

import os
import random
import secrets
from dataclasses import dataclass, field

from quota.v1 import session_pb2 as spb
from quota_rules.limits import MAX_AMOUNT
from tests.helpers.calls import assert_balanced, audit, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage

STEPS = 120
TOTAL = 2_000


@dataclass
class Counters:
    """What one honest agent has done with one budget, cumulative."""

    seq: int = 0
    consumed: int = 0
    returned: int = 0
    reserved: int = 0
    released: int = 0
    balance: int = 0  # the center's last word on the holding
    applied: tuple[int, int, int, int] = (0, 0, 0, 0)

    def usage(self, budget_id: str) -> spb.Usage:
        return usage(budget_id, self.seq, self.consumed, self.returned, self.reserved, self.released)

    def available(self) -> int:
        c, r, res, rel = self.applied
        net = (self.consumed - c) - (self.returned - r) + (self.reserved - res) + (self.released - rel)
        return self.balance - net


@dataclass
class Agent:
    stream: Stream
    books: dict[str, Counters] = field(default_factory=dict)


def seed() -> int:
    chosen = os.environ.get("SESSION_FUZZ_SEED")
    if chosen:
        return int(chosen)
    return 20261203 if os.environ.get("CI") else secrets.randbelow(2**32)


def adopt(c: Counters, h: spb.AgentHolding) -> None:
    c.balance = h.balance
    c.applied = (h.applied.consumed, h.applied.returned, h.applied.reserved, h.applied.released)


def hostile(rng: random.Random, c: Counters, budget_id: str) -> spb.Usage:
    """A report no honest agent sends, built on this agent's real counters."""
    seq = c.seq + rng.randint(1, 3)
    u = usage(budget_id, seq, c.consumed, c.returned, c.reserved, c.released)
    kind = rng.choice(
        [
            "negative",
            "huge",
            "refund-more",
            "backwards",
            "overspend",
            "old-seq",
            "sum-too-big",
            "mint-by-refund",
        ]
    )
    if kind == "negative":
        setattr(
            u, rng.choice(["consumed", "returned", "reserved", "released", "seq"]), -rng.randint(1, 10**6)
        )
    elif kind == "huge":
        setattr(
            u,
            rng.choice(["consumed", "returned", "reserved", "released"]),
            rng.choice([MAX_AMOUNT + 1, 2**62]),
        )
    elif kind == "refund-more":
        u.returned = u.consumed + rng.randint(1, 5_000)
    elif kind == "backwards" and c.consumed > 0:
        u.consumed = c.consumed - 1
    elif kind == "overspend":
        u.consumed = c.consumed + c.available() + rng.randint(1, 1_000)
    elif kind == "old-seq":
        u.seq = max(0, c.seq - 1)
        u.consumed = c.consumed + rng.randint(1, 1_000)
    elif kind == "sum-too-big":
        u.consumed, u.reserved = MAX_AMOUNT - 1, 2
    else:  # claims to have consumed much and to refund all of it: returned <= consumed holds
        big = rng.randint(10_000, 10**9)
        u.consumed, u.returned = c.consumed + big, c.returned + big + rng.randint(0, 50)
        u.returned = min(u.returned, u.consumed)
    return u


async def check(client: Client, budgets: list[str], step: int, what: str) -> None:
    for budget_id in budgets:
        b = await get(client, budget_id)
        where = f"step {step} ({what}), budget {budget_id}: {b}"
        assert b.total == TOTAL, where
        assert b.consumed >= 0, where
        assert 0 <= b.available <= TOTAL, where
        assert b.available + b.consumed + b.reserved + b.in_doubt == TOTAL, where
        report = await audit(client, budget_id)
        assert report.balanced, (where, list(report.mismatches))
        for h in report.holders:
            assert h.balance >= 0, (where, h)
            assert h.consumed >= 0, (where, h)


async def test_random_reports_never_mint_or_break_the_books(center: CenterThread, client: Client) -> None:
    run_seed = seed()
    print(f"\nSESSION_FUZZ_SEED={run_seed}")
    rng = random.Random(run_seed)
    tag = secrets.token_hex(3)
    budgets = [f"fz-{tag}-{i}" for i in range(2)]
    for budget_id in budgets:
        await create(client, budget_id, TOTAL, sub_buckets=1, max_slice=200)
    agents = [Agent(Stream(center.target, f"fz-{tag}-a{i}")) for i in range(3)]
    try:
        for a in agents:
            await a.stream.hello()
            for budget_id in budgets:
                a.books[budget_id] = Counters()
        for step in range(STEPS):
            a = rng.choice(agents)
            budget_id = rng.choice(budgets)
            c = a.books[budget_id]
            action = rng.choice(["grant", "spend", "refund", "release", "hostile", "hostile", "heartbeat"])
            if action == "grant":
                c.seq += 1
                g = await a.stream.grant(
                    budget_id, f"g{step}", c.usage(budget_id), needed=rng.randint(1, 300)
                )
                adopt(c, g.holding)
            elif action in ("spend", "refund", "release"):
                if action == "spend" and c.available() > 0:
                    c.consumed += rng.randint(1, c.available())
                elif action == "refund" and c.consumed > c.returned:
                    c.returned += rng.randint(1, c.consumed - c.returned)
                elif action == "release" and c.available() > 0:
                    c.released += rng.randint(1, c.available())
                c.seq += 1
                adopt(c, await a.stream.report(c.usage(budget_id)))
            elif action == "heartbeat":
                lease = await a.stream.heartbeat(*(a.books[b].usage(b) for b in budgets))
                for h in lease.holdings:
                    adopt(a.books[h.budget_id], h)
            else:
                bad = hostile(rng, c, budget_id)
                await a.stream.send(spb.AgentMessage(usage=bad))
                answer = await a.stream.call.read()
                kind = answer.WhichOneof("body")
                assert kind in ("error", "holding"), answer
                if kind == "holding":
                    # Applied (an old seq changes nothing; a claimed past refunded is not credited):
                    # the honest counters go on from what the center now holds.
                    h = answer.holding
                    adopt(c, h)
                    c.seq = max(c.seq, h.applied.seq)
                    c.consumed, c.returned = h.applied.consumed, h.applied.returned
                    c.reserved, c.released = h.applied.reserved, h.applied.released
                action = f"hostile {bad}".replace("\n", " ")
            await check(client, budgets, step, action)
        for budget_id in budgets:
            await assert_balanced(client, budget_id)
    finally:
        for a in agents:
            await a.stream.close()
