from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quota_center.spending.placement import sub_bucket_for
from quota_rules.allocation import (
    MIN_DRAWS,
    BudgetState,
    HolderState,
    demand,
    fair_share,
    fill_amount,
    fill_due_in,
    refill_amount,
    release_amount,
    slice_size,
)
from quota_rules.limits import MAX_AMOUNT
from quota_rules.modes import Mode, grant_for, mode_for
from quota_rules.policy import Policy, resolve

POLICY = resolve(Policy(sub_buckets=4, min_slice=10, max_slice=100), total=10_000)

# Three holders, slices between 10 and 10 000 covering 20 s of demand; scarce below
# 3 000 remaining, central below 500. Rates 80/15/5 units a second: Doorman's example.
DOORMAN = resolve(
    Policy(
        sub_buckets=3,
        min_slice=10,
        max_slice=10_000,
        refill_horizon_ms=20_000,
        scarcity_threshold=3_000,
        central_threshold=500,
    ),
    total=1_000_000,
)
PLENTY = 1_000_000  # remaining: far from scarcity


def _budget(main: int, rate: float = 100.0, remaining: int = PLENTY, holders: int = 3) -> BudgetState:
    return BudgetState(main=main, remaining=remaining, holders=holders, total_rate=rate)


@pytest.mark.parametrize(
    ("budget", "holder", "expected", "why"),
    [
        # Doorman: demand (rate × 20 s) exceeds every share, so the shares decide.
        (_budget(1000), HolderState(0, rate=80), 800, "hot: 80 % of main"),
        (_budget(1000), HolderState(0, rate=15), 150, "warm: 15 % of main"),
        (_budget(1000), HolderState(0, rate=5), 50, "cold: 5 % of main"),
        (_budget(1000), HolderState(0, rate=0), 10, "a newcomer with no history: min_slice"),
        (_budget(1000), HolderState(0, rate=0, last_slice=40), 0, "idle in the background: nothing"),
        (_budget(1000), HolderState(0, rate=0, need=7, last_slice=40), 10, "idle with a request: min_slice"),
        (_budget(1000), HolderState(0, rate=0.1), 10, "a trickle: demand 2, clamped up to min_slice"),
        (
            _budget(1000, 0.1),
            HolderState(0, rate=0.1, draw=3),
            3 * MIN_DRAWS,
            "a trickle of 3s: MIN_DRAWS draws, not a refill each",
        ),
        (_budget(1000, 10), HolderState(0, rate=10, draw=3), 200, "more demand than MIN_DRAWS draws: demand"),
        (_budget(1000, 0.2), HolderState(0, rate=0.1, draw=40), 500, "MIN_DRAWS draws within its fair share"),
        (_budget(10**9, 1), HolderState(0, rate=1, draw=900), 10_000, "MIN_DRAWS draws within max_slice"),
        (_budget(1000, 4, remaining=2_999), HolderState(0, rate=4, draw=3), 20, "scarce: demand only"),
        (
            _budget(1000),
            HolderState(0, need=3, last_slice=10, draw=3),
            3 * MIN_DRAWS,
            "too rare for a rate, asked now: MIN_DRAWS draws",
        ),
        (
            _budget(1000),
            HolderState(0, last_slice=10, draw=3),
            0,
            "too rare for a rate, in the background: idle",
        ),
        (_budget(100_000), HolderState(0, rate=80), 1600, "main plentiful: rate × horizon"),
        (_budget(100_000, rate=80), HolderState(0, rate=80), 1600, "alone: its share is all of main"),
        (_budget(10**9, rate=900), HolderState(0, rate=800), 10_000, "clamped to max_slice"),
        (_budget(1000), HolderState(0, rate=80, need=900), 900, "never less than the need"),
        (_budget(1000), HolderState(0, rate=80, need=1000), 1000, "the need may take all of main"),
        (_budget(1000), HolderState(0, rate=80, need=1001), 0, "need beyond main: merge first"),
        (_budget(0), HolderState(0, rate=80), 0, "main empty"),
        (_budget(0), HolderState(0, rate=80, need=1), 0, "main empty, with a request"),
        (_budget(5), HolderState(0, rate=0), 5, "never more than main"),
        (_budget(1000, rate=0), HolderState(0, need=5), 333, "no rates at all: an equal share"),
        (_budget(1000, rate=0), HolderState(0), 10, "no rates at all, background: min_slice"),
        (_budget(1000, rate=50), HolderState(0, rate=80), 1000, "a stale total below its rate: all of main"),
        # Scarcity (remaining < 3 000): a quarter of the horizon's demand, within the fair share.
        (_budget(1000, remaining=2_999), HolderState(0, rate=80, need=3), 400, "scarce: 5 s of demand"),
        (_budget(1000, remaining=2_999), HolderState(0, rate=80, need=900), 900, "scarce: the need"),
        (_budget(1000, remaining=2_999), HolderState(0, rate=80), 400, "scarce background: 5 s of demand"),
        (_budget(1000, remaining=2_999), HolderState(0, rate=5), 25, "scarce cold: 5 s of demand"),
        (_budget(400, remaining=2_999), HolderState(0, rate=80), 320, "scarce: the fair share caps it"),
        (_budget(1000, remaining=2_999), HolderState(0, rate=0, need=3), 10, "scarce, no rate: min_slice"),
        (_budget(1000, remaining=2_999), HolderState(0, rate=0, last_slice=9), 0, "scarce idle: nothing"),
        (_budget(1000, remaining=3_000), HolderState(0, rate=80), 800, "at the threshold: normal"),
        # Central (remaining < 500): exactly the request, nothing in the background.
        (_budget(400, remaining=499), HolderState(0, rate=80, need=3), 3, "central: the request"),
        (_budget(400, remaining=499), HolderState(0, rate=80), 0, "central background: nothing"),
        (_budget(400, remaining=499), HolderState(0, rate=80, need=401), 0, "central, beyond main"),
    ],
)
def test_slice_size(budget: BudgetState, holder: HolderState, expected: int, why: str) -> None:
    got = slice_size(DOORMAN, budget, holder)
    assert got == expected, why
    assert type(got) is int


def test_doorman_shares_before_clamping() -> None:
    budget = _budget(1000)
    shares = [fair_share(budget, HolderState(0, rate=r)) for r in (80, 15, 5)]
    assert shares == [800, 150, 50]
    assert fair_share(budget, HolderState(0, rate=0)) == 0  # a newcomer's share; min_slice covers it
    assert fair_share(_budget(1000, rate=0), HolderState(0)) == 333  # no rates: equal shares


HUGE = float("inf")


@pytest.mark.parametrize(
    ("policy", "budget", "holder", "expected"),
    [
        (
            resolve(Policy(sub_buckets=2, max_slice=MAX_AMOUNT, scarcity_threshold=1), MAX_AMOUNT),
            BudgetState(MAX_AMOUNT, MAX_AMOUNT, 2, 1e300),
            HolderState(0, rate=1e300),
            MAX_AMOUNT,
        ),
        (
            resolve(Policy(sub_buckets=2, max_slice=MAX_AMOUNT, scarcity_threshold=1), MAX_AMOUNT),
            BudgetState(MAX_AMOUNT, MAX_AMOUNT, 2, HUGE),
            HolderState(0, rate=HUGE),
            MAX_AMOUNT,
        ),
        (
            resolve(Policy(sub_buckets=2, max_slice=MAX_AMOUNT, scarcity_threshold=1), MAX_AMOUNT),
            BudgetState(MAX_AMOUNT, MAX_AMOUNT, 2, HUGE),
            HolderState(0, rate=1.0),
            1,  # its share of an unbounded total rounds to nothing: min_slice
        ),
        (
            resolve(Policy(sub_buckets=2, max_slice=MAX_AMOUNT, scarcity_threshold=1), MAX_AMOUNT),
            BudgetState(MAX_AMOUNT, MAX_AMOUNT, 2, 3.0),
            HolderState(0, rate=1.0, need=MAX_AMOUNT),
            MAX_AMOUNT,
        ),
        (POLICY, BudgetState(1000, PLENTY, 4, float("nan")), HolderState(0, rate=float("nan")), 10),
        (POLICY, BudgetState(1000, PLENTY, 4, -5.0), HolderState(0, rate=-5.0, last_slice=1), 0),
        (POLICY, BudgetState(-3, PLENTY, 4, 1.0), HolderState(0, rate=1.0), 0),
    ],
)
def test_slice_size_edges(policy: Policy, budget: BudgetState, holder: HolderState, expected: int) -> None:
    got = slice_size(policy, budget, holder)
    assert got == expected
    assert type(got) is int


@pytest.mark.parametrize(
    ("rate", "horizon_ms", "expected"),
    [(0.0, 2000, 0), (1.0, 2000, 2), (0.3, 1000, 1), (2.5, 1000, 3), (1e300, 2000, MAX_AMOUNT), (1.0, 0, 0)],
)
def test_demand_rounds_up_and_caps(rate: float, horizon_ms: int, expected: int) -> None:
    assert demand(rate, horizon_ms) == expected


@given(
    main=st.integers(0, MAX_AMOUNT),
    rates=st.lists(st.floats(0, 1e12, allow_nan=False), min_size=1, max_size=8),
    need=st.integers(0, MAX_AMOUNT),
    remaining_extra=st.integers(0, MAX_AMOUNT),
)
def test_slice_size_invariants(main: int, rates: list[float], need: int, remaining_extra: int) -> None:
    """Shares never add up to more than main; a slice covers the need when main can, never exceeds main."""
    budget = BudgetState(main, min(MAX_AMOUNT, main + remaining_extra), len(rates), sum(rates))
    assert sum(fair_share(budget, HolderState(0, rate=r)) for r in rates) <= main
    for r in rates:
        got = slice_size(DOORMAN, budget, HolderState(0, rate=r, need=need))
        assert type(got) is int
        assert 0 <= got <= main
        assert got >= need or need > main
        # The replenisher applies the mode with grant_for: a no-op on what slice_size gave, except
        # that a sub-bucket refilled in SCARCE mode (for a reservation) gets only what it needs.
        mode = mode_for(DOORMAN, budget.remaining)
        if need > 0:
            given = grant_for(mode, DOORMAN, need=need, main=main, slice_=got)
            if mode is Mode.SCARCE:
                assert given == (0 if need > main else min(main, max(need, DOORMAN.min_slice))) <= got
            else:
                assert given == got


@pytest.mark.parametrize(
    ("holder", "lead_ms", "expected", "why"),
    [
        (HolderState(199, rate=80), 0, 800, "below 25 % of its 800 slice: a fill"),
        (HolderState(200, rate=80), 0, 0, "at the watermark: nothing yet"),
        (HolderState(200, rate=80), 3000, 800, "less than 3 s of demand (240) left: a fill"),
        (HolderState(240, rate=80), 3000, 0, "3 s of demand left: nothing yet"),
        (HolderState(0, rate=0), 0, 10, "a newcomer is primed with min_slice"),
        (HolderState(2, rate=0), 0, 10, "a newcomer below 25 % of min_slice"),
        (HolderState(3, rate=0), 0, 0, "a newcomer at its watermark"),
        (HolderState(0, rate=0, last_slice=800), 0, 0, "idle: never filled"),
        (HolderState(0, rate=80, need=5000), 0, 800, "a background fill ignores a need"),
    ],
)
def test_fill_amount(holder: HolderState, lead_ms: int, expected: int, why: str) -> None:
    assert fill_amount(DOORMAN, _budget(1000), holder, lead_ms) == expected, why


@pytest.mark.parametrize(
    ("holder", "lead_ms", "expected", "why"),
    [
        (HolderState(199, rate=80), 0, 0.0, "below its watermark (200 of 800): now"),
        (HolderState(600, rate=80), 0, 401 / 80, "401 units above its watermark at 80/s"),
        (HolderState(600, rate=80), 5000, 201 / 80, "the lead's demand (400) raises the watermark"),
        (HolderState(2, rate=0), 0, 0.0, "a newcomer below its watermark: now"),
        (HolderState(3, rate=0), 0, math.inf, "a newcomer at its watermark draws nothing: never"),
        (HolderState(0, rate=0, last_slice=800), 0, math.inf, "idle: never"),
    ],
)
def test_fill_due_in(holder: HolderState, lead_ms: int, expected: float, why: str) -> None:
    assert fill_due_in(DOORMAN, _budget(1000), holder, lead_ms) == pytest.approx(expected), why
    # Consistent with fill_amount: due now exactly when a fill would be made now.
    assert (expected == 0) == (fill_amount(DOORMAN, _budget(1000), holder, lead_ms) > 0), why


@given(
    balance=st.integers(0, 5000),
    rate=st.floats(0, 1000),
    lead_ms=st.integers(0, 10_000),
    elapsed=st.floats(0, 100),
)
def test_no_fill_is_due_before_fill_due_in_says(
    balance: int, rate: float, lead_ms: int, elapsed: float
) -> None:
    """Drawing at its rate, a holder reaches its watermark no sooner than ``fill_due_in``."""
    holder = HolderState(balance, rate=rate, last_slice=10)
    due = fill_due_in(DOORMAN, _budget(1000), holder, lead_ms)
    later = HolderState(max(0, balance - math.floor(rate * elapsed)), rate=rate, last_slice=10)
    if elapsed < due:
        assert fill_amount(DOORMAN, _budget(1000), later, lead_ms) == 0


@pytest.mark.parametrize(
    ("budget", "balance", "expected", "why"),
    [
        (_budget(1000), 500, 490, "everything above min_slice"),
        (_budget(1000), 10, 0, "at the floor: nothing"),
        (_budget(1000), 3, 0, "below the floor: nothing"),
        (_budget(1000, remaining=2_999), 500, 490, "scarce: the floor stays"),
        (_budget(100, remaining=499), 300, 300, "central: everything, no floor"),
    ],
)
def test_release_amount(budget: BudgetState, balance: int, expected: int, why: str) -> None:
    assert release_amount(DOORMAN, budget, HolderState(balance, last_slice=40)) == expected, why


@pytest.mark.parametrize(
    ("need", "main", "expected", "why"),
    [
        (5, 10_000, 100, "plenty in main: a full max slice"),
        (5, 200, 50, "main low: a fair share (main / 4 sub-buckets)"),
        (5, 20, 10, "fair share below min slice: the min slice"),
        (150, 10_000, 150, "a request larger than the max slice gets what it needs"),
        (30, 30, 30, "never more than main holds"),
        (31, 30, 0, "main cannot cover the need: nothing (reclaim instead)"),
        (0, 100, 0, "nothing needed"),
    ],
)
def test_refill_amount(need: int, main: int, expected: int, why: str) -> None:
    assert refill_amount(need=need, main_balance=main, policy=POLICY) == expected, why


def test_sub_bucket_choice_is_stable_and_spreads() -> None:
    # crc32 is the same in every process (Python's hash() is salted per process).
    assert sub_bucket_for("order-1", 4) == sub_bucket_for("order-1", 4)
    seen = {sub_bucket_for(f"order-{i}", 4) for i in range(200)}
    assert seen == {0, 1, 2, 3}
    assert all(0 <= sub_bucket_for(f"r{i}", 7) < 7 for i in range(100))


def test_policy_defaults_are_resolved_from_the_total() -> None:
    p = resolve(Policy(), total=8000)
    assert (p.min_slice, p.max_slice) == (1, 500)  # total / (4 × 4 sub-buckets)
    assert p.scarcity_threshold == 4 * 500
    assert p.central_threshold == 500


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy(strategy="greedy"), "strategy"),
        (Policy(sub_buckets=0), "sub_buckets"),
        (Policy(sub_buckets=1000), "sub_buckets"),
        (Policy(min_slice=10, max_slice=5), "below min_slice"),
        (Policy(min_slice=-1), "min_slice"),
        (Policy(low_watermark_pct=101), "low_watermark_pct"),
    ],
)
def test_bad_policies_are_refused(policy: Policy, message: str) -> None:
    from quota_rules.limits import InvalidInput

    with pytest.raises(InvalidInput, match=message):
        resolve(policy, total=100)
