"""A deterministic simulation of many region agents against one center (fake clock, in-process).

The agents are the real decision code (``region_agent.core.agent.Agent``: slices, counters,
forwarding, refill and release timing); the center is a model of ``quota_center.agents`` that
applies cumulative usage reports exactly as ``agent_report.lua`` does and sizes grants with the
real slice function and modes (``quota_rules.allocation``, ``quota_rules.modes``). Messages
arrive at once (no network), so what it measures is the protocol's arithmetic: how often agents
need the center, whether any request is refused while budget remains, and what is left over.

    python -m loadtest.simulate --agents 300 --seconds 60

Demand is skewed (Zipf over agents) and larger than the budget, so the run ends with the
budget drained: leftover must be 0 and false refusals 0. The test suite runs it small
(tests/region_agent/test_simulate.py).
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field

from loadtest import verdict
from quota_rules.allocation import BudgetState, HolderState, slice_size
from quota_rules.build import add_version
from quota_rules.modes import Mode, mode_for
from quota_rules.policy import Policy, resolve
from quota_rules.usage import Usage
from region_agent.core.agent import Agent
from region_agent.core.records import Answer
from region_agent.core.serving import Forward
from region_agent.core.slices import Holding, State
from region_agent.storage.journal import MemoryJournal

BUDGET = "sim"
STRATEGIES = ("progressive", "static", "central", "local")
TICK_MS = 10
LEASE_MS = 300_000


@dataclass
class _Holding:
    balance: int = 0
    applied: Usage = field(default_factory=Usage)
    version: int = 0
    rate: float = 0.0
    last_slice: int = 0


@dataclass
class Calls:
    """Calls agents made on the center, by kind."""

    slice_requests: int = 0
    forwarded: int = 0
    reclaim_orders: int = 0
    releases: int = 0
    heartbeats: int = 0

    @property
    def on_demand(self) -> int:
        """Everything but the periodic heartbeats."""
        return self.slice_requests + self.forwarded + self.reclaim_orders + self.releases


class SimCenter:
    """The center's side of the protocol for one budget, with main and agent holdings only."""

    def __init__(self, total: int, policy: Policy) -> None:
        self.total = total
        self.policy = policy
        self.main = total
        self.consumed_here = 0  # forwarded deductions served from main
        self.holdings: dict[int, _Holding] = {}
        self.calls = Calls()

    def free(self) -> int:
        return self.main + sum(h.balance for h in self.holdings.values())

    def report(self, agent: int, c: Usage) -> Holding:
        """Apply cumulative usage as agent_report.lua does; return the holding after it."""
        h = self.holdings.setdefault(agent, _Holding(applied=c))
        if c.seq > h.applied.seq:
            delta = c.net_since(h.applied)
            if delta > h.balance:
                raise AssertionError(f"agent {agent} overspent: {delta} > {h.balance}")
            self.main += c.released - h.applied.released
            h.balance -= delta
            h.applied = c
            h.version += 1
        mode = mode_for(self.policy, self.free())
        return Holding(BUDGET, h.version, h.balance, h.applied, LEASE_MS, mode, State.ACTIVE)

    def grant(self, agent: int, c: Usage, rate: int) -> tuple[int, Holding]:
        self.calls.slice_requests += 1
        self.report(agent, c)
        h = self.holdings[agent]
        h.rate = float(rate)
        amount = 0
        if mode_for(self.policy, self.free()) is not Mode.CENTRAL:
            budget = BudgetState(
                main=self.main,
                remaining=self.free(),
                holders=max(1, len(self.holdings)),
                total_rate=sum(x.rate for x in self.holdings.values()),
            )
            amount = slice_size(self.policy, budget, HolderState(h.balance, float(rate), 0, h.last_slice))
        if amount:
            self.main -= amount
            h.balance += amount
            h.version += 1
            h.last_slice = amount
        return amount, self.report(agent, c)

    def static_share(self, agent: int, c: Usage, agents: int) -> Holding:
        """The static strategy: one equal share of the total, once."""
        self.calls.slice_requests += 1
        self.report(agent, c)
        share = min(self.main, self.total // agents)
        self.main -= share
        h = self.holdings[agent]
        h.balance += share
        h.version += 1
        return self.report(agent, c)

    def deduct(self, amount: int, agents: list[Agent]) -> bool:
        """A forwarded deduction: served from main, after reclaiming from every agent if needed."""
        self.calls.forwarded += 1
        if self.main < amount:
            for i, a in enumerate(agents):
                if self.holdings.get(i, _Holding()).balance > 0:
                    self.calls.reclaim_orders += 1
                    _, usage = a.answer_reclaim(BUDGET, self.holdings[i].balance)
                    a.adopt(self.report(i, usage), sent_at=-1)
        if self.main < amount:
            return False
        self.main -= amount
        self.consumed_here += amount
        return True


@dataclass
class Result:
    agents: int
    seconds: int
    total: int
    deductions: int = 0
    local: int = 0
    refused: int = 0
    false_refusals: int = 0
    leftover: int = 0
    drained_at_s: float = 0.0
    calls: Calls = field(default_factory=Calls)
    # While the budget was in NORMAL mode (before the end game): deductions and center calls.
    steady_deductions: int = 0
    steady_calls: int = 0
    scarce_at_s: float = 0.0
    strategy: str = "progressive"
    oversell: int = 0

    def steady_per_thousand(self) -> float:
        """Center calls per 1000 deductions while the budget was plentiful (NORMAL mode)."""
        return verdict.per_thousand(self.steady_calls, self.steady_deductions)

    def per_thousand(self, n: int) -> float:
        return verdict.per_thousand(n, self.deductions)

    def table(self) -> str:
        rows = [
            ("strategy", self.strategy),
            ("agents", f"{self.agents}"),
            ("simulated seconds", f"{self.seconds}"),
            ("budget total", f"{self.total}"),
            ("deductions served", f"{self.deductions}"),
            ("served from slices", f"{100 * self.local / max(1, self.deductions):.1f} %"),
            ("center calls / 1000 deductions, steady", f"{self.steady_per_thousand():.2f}"),
            ("center calls / 1000 deductions, whole run", f"{self.per_thousand(self.calls.on_demand):.2f}"),
            ("  slice requests", f"{self.per_thousand(self.calls.slice_requests):.2f}"),
            ("  forwarded requests", f"{self.per_thousand(self.calls.forwarded):.2f}"),
            ("  reclaim orders", f"{self.per_thousand(self.calls.reclaim_orders):.2f}"),
            ("  releases", f"{self.per_thousand(self.calls.releases):.2f}"),
            ("heartbeats / 1000 deductions", f"{self.per_thousand(self.calls.heartbeats):.2f}"),
            ("end game began after", f"{self.scarce_at_s:.2f} s" if self.scarce_at_s else "never"),
            ("refusals", f"{self.refused}"),
            ("false refusals", f"{self.false_refusals}"),
            ("oversell", f"{self.oversell}"),
            ("leftover budget", f"{self.leftover}"),
            ("drained after", f"{self.drained_at_s:.2f} s" if self.drained_at_s else "not drained"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(
    agents: int = 300,
    seconds: int = 60,
    *,
    rate: int = 20_000,
    total: int | None = None,
    seed: int = 1,
    zipf: float = 1.1,
    heartbeat_ms: int = 1_000,
    refill_ms: int = 100,
    progress: bool = False,
    strategy: str = "progressive",
) -> Result:
    """Simulate ``agents`` agents drawing ``rate`` deductions a second in all for ``seconds``.

    ``strategy``: ``progressive`` (the product's default), ``static`` (each agent gets an equal
    share once, no refill, no merge), ``central`` (every deduction forwarded to the center) or
    ``local`` (each agent spends its own copy of the whole budget, no center: it oversells).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    rng = random.Random(seed)
    mean_amount = 5  # amounts 1..9
    if total is None:
        # Demand over the run is 1.25 × the budget: the budget runs out near 80 % of the run.
        total = int(rate * seconds * mean_amount * 0.8)
    # The product's default policy with one holder per agent (max slice total / (4 × agents),
    # scarce below one max slice per holder, central below one), written out: a budget's
    # sub-bucket count, which the defaults derive from, is capped far below a fleet of agents.
    max_slice = max(1, total // (4 * agents))
    policy = resolve(
        Policy(
            strategy="progressive" if strategy == "local" else strategy,
            sub_buckets=1,
            max_slice=max_slice,
            scarcity_threshold=agents * max_slice,
            central_threshold=max_slice,
        ),
        total,
    )
    center = SimCenter(total, policy)
    fleet = [Agent(MemoryJournal()) for _ in range(agents)]
    weights = [1 / (i + 1) ** zipf for i in range(agents)]
    share = [w / sum(weights) for w in weights]
    result = Result(agents, seconds, total, strategy=strategy)
    spent_by_agents = [0] * agents  # true local consumption, for the false-refusal check
    for i, a in enumerate(fleet):  # each agent learns the budget and asks for a first slice
        a.track(BUDGET, 0)
        if strategy == "static":
            a.adopt(center.static_share(i, a.usage(BUDGET), agents), 0)
        else:
            _, h = center.grant(i, a.usage(BUDGET), 0)
            a.adopt(h, 0)
    seq = 0
    for tick in range(seconds * 1000 // TICK_MS):
        now = tick * TICK_MS
        if not result.scarce_at_s and mode_for(policy, center.free()) is not Mode.NORMAL:
            result.scarce_at_s = now / 1000
            result.steady_deductions = result.deductions
            result.steady_calls = center.calls.on_demand
        for i, a in enumerate(fleet):
            expected = rate * share[i] * TICK_MS / 1000
            n = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            for _ in range(n):
                seq += 1
                amount = rng.randint(1, 2 * mean_amount - 1)
                if strategy == "local":
                    # Its own copy of the budget: no one else's spending is seen.
                    if spent_by_agents[i] + amount <= total:
                        spent_by_agents[i] += amount
                        result.local += 1
                        result.deductions += 1
                    else:
                        result.refused += 1
                    continue
                answer = a.deduct(BUDGET, f"r{seq}", amount, now)
                if isinstance(answer, Answer):
                    result.local += 1
                    result.deductions += 1
                    spent_by_agents[i] += amount
                    continue
                assert isinstance(answer, Forward)
                if strategy != "static" and center.deduct(amount, fleet):
                    a.remember(f"r{seq}", Answer("OK", amount))
                    a.track(BUDGET, now, amount)
                    result.deductions += 1
                else:
                    result.refused += 1
                    truly_left = verdict.left(total, center.consumed_here + sum(spent_by_agents))
                    if truly_left >= amount:
                        result.false_refusals += 1
                    if not result.drained_at_s and truly_left == 0:
                        result.drained_at_s = now / 1000
            if strategy in ("static", "local"):
                continue  # no refills, releases or reports to speak of
            if now % refill_ms == 0:
                if a.wants_refill(BUDGET, now):
                    granted, h = center.grant(i, a.usage(BUDGET), a.observed_rate(BUDGET, now))
                    a.adopt(h, now)
                    a.granted(BUDGET, granted)
                give = a.release_due(BUDGET, now)
                if give and a.release(BUDGET, give):
                    center.calls.releases += 1
                    a.adopt(center.report(i, a.usage(BUDGET)), now)
            if now % heartbeat_ms == (i * TICK_MS) % heartbeat_ms:
                center.calls.heartbeats += 1
                a.adopt(center.report(i, a.usage(BUDGET)), now)
        if progress and now % 10_000 == 0 and now:
            print(f"  {now // 1000} s simulated, {result.deductions} deductions", file=sys.stderr)
    result.calls = center.calls
    if not result.scarce_at_s:
        result.steady_deductions, result.steady_calls = result.deductions, center.calls.on_demand
    consumed = center.consumed_here + sum(spent_by_agents)
    result.oversell = verdict.oversell(total, consumed)
    result.leftover = verdict.leftover(total, consumed)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.simulate",
        description="Simulate many region agents against one center on a fake clock and print center calls"
        " per thousand deductions, false refusals and leftover budget.",
    )
    add_version(p)
    p.add_argument("--agents", type=int, default=300, help="number of agents (default 300)")
    p.add_argument("--seconds", type=int, default=60, help="simulated seconds (default 60)")
    p.add_argument(
        "--rate", type=int, default=20_000, help="deductions a second over all agents (default 20000)"
    )
    p.add_argument("--total", type=int, default=None, help="budget total (default: 80 %% of the demand)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--strategy",
        choices=(*STRATEGIES, "all"),
        default="progressive",
        help="allocation strategy to simulate, or all of them side by side (default progressive)",
    )
    args = p.parse_args(argv)
    if args.agents < 1 or args.seconds < 1 or args.rate < 1:
        p.error("--agents, --seconds and --rate must be at least 1")
    chosen = STRATEGIES if args.strategy == "all" else (args.strategy,)
    results = []
    for strategy in chosen:
        print(f"simulating {strategy} ...", file=sys.stderr)
        results.append(
            run(
                args.agents,
                args.seconds,
                rate=args.rate,
                total=args.total,
                seed=args.seed,
                progress=True,
                strategy=strategy,
            )
        )
    print(results[0].table() if len(results) == 1 else comparison(results))
    # Exit status: the product's strategy must neither oversell nor refuse falsely; the others
    # are there for comparison and fail by design.
    product = [r for r in results if r.strategy == "progressive"]
    return 1 if any(r.false_refusals or r.oversell for r in product) else 0


def comparison(results: list[Result]) -> str:
    """One row per strategy: oversell, false refusals, leftover, center calls per 1000 deductions."""
    head = ("strategy", "deductions", "oversell", "false refusals", "leftover", "center calls/1000")
    rows = [
        (
            r.strategy,
            str(r.deductions),
            str(r.oversell),
            str(r.false_refusals),
            str(r.leftover),
            f"{r.per_thousand(r.calls.on_demand):.1f}",
        )
        for r in results
    ]
    return verdict.table(head, rows)


if __name__ == "__main__":
    sys.exit(main())
