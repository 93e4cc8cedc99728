"""The scenarios: which Locust user class runs each, where it sends traffic, how big its budget is.

Shared by `run.py` (which starts what a scenario needs) and `check.py` (which knows what to check);
the user classes themselves are in `scenarios.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    user_class: str
    summary: str
    # Whether traffic goes through region agents (run.py starts three of them on loopback).
    agents: bool
    # Budget created for the run, and the largest amount one call asks for.
    total: int
    max_amount: int
    # Scarce scenarios spend the budget to zero: the check looks for false refusals and finishes
    # with a sequential drain of what is left. They make no returns and no reservations.
    scarce: bool
    # Every deduction's end, latency and outcome is kept: the report shows the sale's phases
    # (serving, end game, after the sell-out; ``loadtest.phases``).
    phases: bool = False


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "steady",
            "SteadyUser",
            "mixed Deduct / Return / Reserve-Confirm-Cancel / GetBalance on a large budget, via the agents",
            agents=True,
            total=10**12,
            max_amount=1_000,
            scarce=False,
        ),
        Scenario(
            "flash_sale",
            "FlashSaleUser",
            "every user rushes a small budget one unit at a time, via the agents; the last units must go",
            agents=True,
            total=1_000,
            max_amount=1,
            scarce=True,
            phases=True,
        ),
        Scenario(
            "drain",
            "DrainUser",
            "random sizes, each user shrinking its sizes after a refusal, until the budget is exactly 0",
            agents=True,
            total=50_000,
            max_amount=200,
            scarce=True,
        ),
        Scenario(
            "skewed_regions",
            "SkewedRegionsUser",
            "Deduct / Return spread 80/15/5 over three region agents",
            agents=True,
            total=10**12,
            max_amount=1_000,
            scarce=False,
        ),
        Scenario(
            "center_direct",
            "CenterDirectUser",
            "the steady mix straight to the center, no agents",
            agents=False,
            total=10**12,
            max_amount=1_000,
            scarce=False,
        ),
    )
}

# Weights of the three agents in skewed_regions, in the order the agents are given.
SKEW = (80, 15, 5)
REGIONS = ("eu", "us", "ap")
