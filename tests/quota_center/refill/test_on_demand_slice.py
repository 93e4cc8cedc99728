"""On-demand refills are sized from the observed demand the filler keeps (pure)."""

from __future__ import annotations

import math

from quota_center.budgets.registry import BudgetMeta
from quota_center.holders import MAIN, sub_holder
from quota_center.refill.cover import on_demand_slice
from quota_rules.policy import Policy, resolve
from quota_rules.rates import Demand

# Thresholds of 1: the mode stays NORMAL, so what comes out is the rate-sized slice itself.
POLICY = resolve(
    Policy(
        sub_buckets=4,
        min_slice=10,
        max_slice=5_000,
        refill_horizon_ms=2_000,
        scarcity_threshold=1,
        central_threshold=1,
    ),
    total=1_000_000,
)
META = BudgetMeta("b", "u", POLICY, POLICY.sub_buckets, None, None, gen=1)


def _balances(main: int) -> dict[str, int]:
    return {MAIN: main, **{sub_holder(i): 0 for i in range(4)}}


def _drawn(rates: dict[int, int], seconds: int = 10) -> Demand:
    """A Demand that watched each sub-bucket consume ``rates[i]`` units a second for ``seconds``."""
    d = Demand(half_life_s=2.0)
    for t in range(seconds + 1):
        for i in range(4):
            d.see("b", 1, i, consumed=rates.get(i, 0) * t, balance=0, now=float(t))
    return d


def test_without_rates_it_is_the_equal_share_slice() -> None:
    # main / 4 holders = 2 500, within [10, 5 000].
    assert on_demand_slice(META, 0, _balances(10_000), 7, None, 0.0) == 2_500


def test_a_hot_sub_bucket_gets_rate_times_horizon() -> None:
    d = _drawn({0: 1_000, 1: 10, 2: 10, 3: 10})
    rate = d.rate("b", 0, 10.0)  # about 1 000 a second (sampled once a second: a little above)
    assert 950 <= rate <= 1_250
    # rate × 2 s, well below its share of main (97 % of 1 000 000) and max_slice.
    assert on_demand_slice(META, 0, _balances(1_000_000), 7, d, 10.0) == math.ceil(rate * 2)


def test_a_cold_sub_bucket_gets_its_small_demand_not_an_equal_share() -> None:
    d = _drawn({0: 1_000, 1: 10, 2: 10, 3: 10})
    # About 10 units a second × 2 s: the cold holder strands little, not 250 000.
    assert 19 <= on_demand_slice(META, 1, _balances(1_000_000), 7, d, 10.0) <= 25


def test_the_fair_share_of_a_small_main_caps_the_hot_one() -> None:
    d = _drawn({0: 600, 1: 200, 2: 200})
    # Demand about 1 200, but its share of a main of 1 000 is 60 %.
    assert on_demand_slice(META, 0, _balances(1_000), 7, d, 10.0) == 600


def test_never_less_than_the_need() -> None:
    d = _drawn({0: 1, 1: 1_000})
    assert on_demand_slice(META, 0, _balances(100_000), 900, d, 10.0) == 900
