"""When the agent asks for a slice and when it gives surplus back."""

from __future__ import annotations

from typing import Any

from quota_rules.modes import Mode
from quota_rules.rates import DecayingRate, observe
from quota_rules.usage import Usage
from region_agent.core.refill import RefillRules, observed_rate, release_due, wants_refill
from region_agent.core.slices import BudgetSlice, State
from tests.helpers.holdings import holding

RULES = RefillRules(refill_horizon_ms=2000, low_watermark_pct=25, lead_ms=200, release_idle_ms=10_000, keep=5)


def spending(rate_per_s: int, *, until_ms: int = 2_000, balance: int = 100, **kw: Any) -> BudgetSlice:
    """A slice that saw ``rate_per_s`` units a second, in 100 ms steps, up to ``until_ms``."""
    r = DecayingRate.starting(0.0)
    for t in range(100, until_ms + 1, 100):
        r = observe(r, rate_per_s / 10, t / 1000, RULES.rate_half_life_ms / 1000)
    return BudgetSlice(
        "b1", Usage(), holding(balance=balance, **kw), 60_000, r, active_at=until_ms, last_grant=50
    )


def test_the_rate_is_reported_in_whole_units_a_second() -> None:
    assert observed_rate(spending(100), 2_000, RULES) in range(98, 103)
    assert observed_rate(BudgetSlice("b1"), 0, RULES) == 0


def test_a_new_budget_with_nothing_asks_and_a_full_one_does_not() -> None:
    assert wants_refill(BudgetSlice("b1"), 0, RULES)
    assert not wants_refill(BudgetSlice("b1", holding=holding(balance=100), last_grant=100), 0, RULES)


def test_below_the_low_watermark_of_what_the_rate_needs_it_asks() -> None:
    # 100/s over a 2 s horizon is a 200 slice; 25 % of it is 50.
    assert wants_refill(spending(100, balance=49), 2_000, RULES)
    assert not wants_refill(spending(100, balance=60), 2_000, RULES)


def test_no_refill_when_the_center_grants_nothing() -> None:
    assert not wants_refill(spending(100, balance=0, mode=Mode.CENTRAL), 2_000, RULES)
    assert not wants_refill(spending(100, balance=0, state=State.PAUSED), 2_000, RULES)


def test_an_idle_budget_gives_back_all_but_keep() -> None:
    s = spending(100, balance=80)
    assert release_due(s, 2_000 + 9_999, RULES) == 0
    assert release_due(s, 2_000 + 10_000, RULES) == 75


def test_central_mode_gives_back_everything_at_once() -> None:
    assert release_due(spending(100, balance=80, mode=Mode.CENTRAL), 2_000, RULES) == 80


def test_nothing_is_released_without_a_valid_lease_or_once_lost() -> None:
    assert release_due(spending(100, balance=80, lost=True), 20_000, RULES) == 0
    assert release_due(spending(100, balance=80), 70_000, RULES) == 0
