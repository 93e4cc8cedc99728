"""The strategy comparison: one skewed drain under each allocation strategy, side by side.

    python -m loadtest.strategies [--total 30000] [--workers 12]

For each of ``progressive`` (the product's default), ``static`` (equal shares up front, no refill,
no merge) and ``central`` (every deduction decided at the center) it creates a budget with that
strategy on a stack it starts on loopback (Redis, PostgreSQL, the center, three region agents),
and drains it through the agents with traffic split 80/15/5 over the regions, random amounts,
until every region is refused a deduction of 1. ``local`` (each region spends its own copy of the
budget, no coordination) oversells by design, so it runs in the deterministic simulation only
(``loadtest.simulate``, three agents with about the same skew).

The table: oversell (consumed beyond the total), false refusals (refusals of no more than was
surely left when they were answered: a sound lower bound, see ``verdict.SurelyLeft``), leftover
(what was never issued), center calls per thousand deductions (forwarded requests and slice
requests, from the agents' own metrics), and p50/p99 of the deductions (closed loop: queueing
included). Absolute times are of this machine; compare the rows, not the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devstack import Stack
from loadtest import verdict
from loadtest.catalog import REGIONS
from quota.v1 import admin_pb2 as apb
from quota.v1 import admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota_rules.build import add_version

SKEW = (0.80, 0.15, 0.05)
LIVE = ("progressive", "static", "central")
_STRATEGY = {
    "progressive": pb.STRATEGY_PROGRESSIVE,
    "static": pb.STRATEGY_STATIC,
    "central": pb.STRATEGY_CENTRAL,
}


@dataclass(frozen=True)
class Call:
    region: int
    amount: int
    ok: bool
    sent: float
    done: float


@dataclass
class Drain:
    total: int
    calls: list[Call] = field(default_factory=list)

    @property
    def served(self) -> int:
        return sum(c.amount for c in self.calls if c.ok)

    def false_refusals(self) -> int:
        """Refusals of no more than was surely left when answered (``verdict.SurelyLeft``)."""
        surely = verdict.SurelyLeft(self.total, ((c.sent, c.amount) for c in self.calls if c.ok))
        return sum(c.amount <= surely.at(c.done) for c in self.calls if not c.ok)

    def percentile(self, q: float) -> float:
        times = sorted(c.done - c.sent for c in self.calls)
        return 1000 * times[min(len(times) - 1, int(q * len(times)))] if times else 0.0


@dataclass
class Row:
    strategy: str
    deductions: int
    oversell: int
    false_refusals: int
    leftover: int
    calls_per_1000: float
    p50_ms: float | None
    p99_ms: float | None


async def _drain(agents: list[str], budget_id: str, total: int, workers: int, seed: int) -> Drain:
    rng = random.Random(seed)
    drain = Drain(total)
    exhausted = [False, False, False]
    channels = [grpc.aio.insecure_channel(t) for t in agents]
    stubs = [quota_pb2_grpc.QuotaStub(c) for c in channels]

    async def worker(w: int) -> None:
        i = 0
        while not all(exhausted):
            region = rng.choices(range(3), SKEW)[0]
            amount = 1 if exhausted[region] or i % 5 == 4 else rng.randint(1, 20)
            sent = time.monotonic()
            r = await stubs[region].Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-{w}-{i}", amount=amount)
            )
            done = time.monotonic()
            if r.code not in (pb.RESULT_CODE_OK, pb.RESULT_CODE_INSUFFICIENT):
                raise RuntimeError(f"unexpected answer {pb.ResultCode.Name(r.code)}: {r.message}")
            drain.calls.append(Call(region, amount, r.code == pb.RESULT_CODE_OK, sent, done))
            if r.code == pb.RESULT_CODE_INSUFFICIENT and amount == 1:
                exhausted[region] = True
            i += 1

    try:
        await asyncio.gather(*(worker(w) for w in range(workers)))
    finally:
        for c in channels:
            await c.close()
    return drain


def _center_calls(metrics_urls: list[str]) -> float:
    """Forwarded requests and slice requests of all agents so far, from their /metrics."""
    calls = 0.0
    for url in metrics_urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(("quota_region_agent_forwarded_total{", "quota_region_agent_refills_total{")):
                calls += float(line.rsplit(" ", 1)[1])
    return calls


async def _consumed(admin: admin_pb2_grpc.AdminAsyncStub, budget_id: str, served: int) -> int:
    """The center's consumed once the agents have reported what they served (or after 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        b = (await admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))).budget
        if b.consumed >= served or time.monotonic() > deadline:
            return int(b.consumed)
        await asyncio.sleep(0.2)


async def live(stack: Stack, strategy: str, total: int, workers: int, seed: int) -> Row:
    budget_id = f"cmp-{strategy}-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(stack.center) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        created = await admin.CreateBudget(
            apb.CreateBudgetRequest(
                budget_id=budget_id,
                unit="unit",
                total=total,
                policy=apb.SlicePolicy(strategy=_STRATEGY[strategy], sub_buckets=3),
                actor="loadtest.strategies",
            )
        )
        if created.code != pb.RESULT_CODE_OK:
            raise RuntimeError(f"creating {budget_id}: {created.message}")
        before = _center_calls(stack.agent_metrics)
        drain = await _drain(stack.agents, budget_id, total, workers, seed)
        calls = _center_calls(stack.agent_metrics) - before
        consumed = await _consumed(admin, budget_id, drain.served)
    n = sum(1 for c in drain.calls if c.ok)
    return Row(
        strategy,
        n,
        verdict.oversell(total, consumed),
        drain.false_refusals(),
        verdict.leftover(total, consumed),
        verdict.per_thousand(calls, n),
        drain.percentile(0.5),
        drain.percentile(0.99),
    )


def simulated_local(total: int, seed: int) -> Row:
    """``local`` in the simulation: three agents, skew about 80/15/5 (Zipf exponent 2.4)."""
    from loadtest.simulate import run

    r = run(agents=3, seconds=20, rate=2_000, total=total, seed=seed, zipf=2.4, strategy="local")
    return Row("local (simulated)", r.deductions, r.oversell, r.false_refusals, r.leftover, 0.0, None, None)


def table(rows: list[Row]) -> str:
    head = (
        "strategy",
        "deductions",
        "oversell",
        "false refusals",
        "leftover",
        "center calls/1000",
        "p50",
        "p99",
    )

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    body = [
        (
            r.strategy,
            str(r.deductions),
            str(r.oversell),
            str(r.false_refusals),
            str(r.leftover),
            f"{r.calls_per_1000:.1f}",
            ms(r.p50_ms),
            ms(r.p99_ms),
        )
        for r in rows
    ]
    return verdict.table(head, body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.strategies",
        description="Drain one budget per allocation strategy through three region agents with traffic"
        " split 80/15/5 and print oversell, false refusals, leftover, center calls per 1000 deductions"
        " and latency side by side (local: in the simulation).",
    )
    add_version(p)
    p.add_argument("--total", type=int, default=30_000, help="budget total per strategy (default 30000)")
    p.add_argument("--workers", type=int, default=12, help="concurrent callers (default 12)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--logs", type=Path, default=None, help="where the stack's logs go (default: a temp dir)")
    args = p.parse_args(argv)
    if args.total < 3 or args.workers < 1:
        p.error("--total must be at least 3 and --workers at least 1")

    def progress(line: str) -> None:
        print(line, file=sys.stderr)

    logs = args.logs or Path(tempfile.mkdtemp(prefix="qc-strategies-"))
    rows = []
    with Stack(regions=REGIONS, log_dir=logs, progress=progress) as stack:
        for strategy in LIVE:
            progress(f"draining a {args.total}-unit budget under {strategy} ...")
            rows.append(asyncio.run(live(stack, strategy, args.total, args.workers, args.seed)))
    rows.append(simulated_local(args.total, args.seed))
    print(table(rows))
    product = rows[0]
    return 1 if product.oversell or product.false_refusals or product.leftover else 0


if __name__ == "__main__":
    sys.exit(main())
