from __future__ import annotations

import pytest

from quota_rules.allocation import BudgetState, HolderState
from quota_rules.rates import DecayingRate, Demand, decayed, observe, per_second

HALF_LIFE = 2.0
MIN_WINDOW = 0.1


def _stream(amount: float, every: float, until: float, start: float = 0.0) -> DecayingRate:
    r = DecayingRate.starting(start)
    t = start
    while t + every <= until + 1e-9:
        t += every
        r = observe(r, amount, t, HALF_LIFE)
    return r


@pytest.mark.parametrize(
    ("amount", "every", "until", "expected", "why"),
    [
        (10, 0.1, 0.1, 100, "one look after 100 ms: the rate at once, no warm-up"),
        (10, 0.1, 1.0, 100, "a second of 100/s"),
        (10, 0.1, 30.0, 100, "long steady: 100/s"),
        (1, 0.01, 5.0, 100, "many small amounts: 100/s"),
        (500, 1.0, 20.0, 500, "coarse looks: 500/s"),
        (0.2, 1.0, 20.0, 0.2, "a trickle below a unit a look still has a rate"),
    ],
)
def test_a_steady_stream_reads_as_its_rate(
    amount: float, every: float, until: float, expected: float, why: str
) -> None:
    rate = per_second(_stream(amount, every, until), until, HALF_LIFE, MIN_WINDOW)
    # Amounts are counted at the end of their interval: at most every/(2 τ) high (~2 % at 100 ms).
    assert rate == pytest.approx(expected, rel=0.03 + every / 2.8), why


@pytest.mark.parametrize(
    ("silence", "expected"),
    [(0.0, 100), (2.0, 50), (4.0, 25), (6.0, 12.5), (60.0, 0.0)],
)
def test_silence_halves_the_rate_every_half_life_then_zero(silence: float, expected: float) -> None:
    r = _stream(10, 0.1, 60.0)
    assert per_second(r, 60.0 + silence, HALF_LIFE, MIN_WINDOW) == pytest.approx(expected, rel=0.03)


def test_idle_is_exactly_zero() -> None:
    assert per_second(DecayingRate.starting(5.0), 100.0, HALF_LIFE, MIN_WINDOW) == 0.0
    one = observe(DecayingRate.starting(0.0), 1, 0.0, HALF_LIFE)
    assert per_second(one, 8.0, HALF_LIFE, MIN_WINDOW) > 0.0  # 1/16 of a unit left after 4 half-lives
    assert per_second(one, 8.7, HALF_LIFE, MIN_WINDOW) == 0.0  # under a twentieth: idle


def test_a_first_amount_is_read_over_the_min_window() -> None:
    r = observe(DecayingRate.starting(0.0), 10, 0.0, HALF_LIFE)
    assert per_second(r, 0.0, HALF_LIFE, MIN_WINDOW) == pytest.approx(100)
    assert per_second(r, 0.0, HALF_LIFE, 1.0) == pytest.approx(10)


def test_a_burst_then_a_steady_rate_converges_to_the_steady_rate() -> None:
    r = observe(DecayingRate.starting(0.0), 10_000, 0.1, HALF_LIFE)
    t = 0.1
    for _ in range(300):  # 30 s of 100/s
        t += 0.1
        r = observe(r, 10, t, HALF_LIFE)
    assert per_second(r, t, HALF_LIFE, MIN_WINDOW) == pytest.approx(100, rel=0.03)


def test_non_positive_amounts_and_a_clock_going_back_change_nothing_but_decay() -> None:
    r = observe(DecayingRate.starting(0.0), 10, 1.0, HALF_LIFE)
    assert observe(r, 0, 1.0, HALF_LIFE) == r
    assert observe(r, -5, 1.0, HALF_LIFE) == r
    assert decayed(r, 0.5, HALF_LIFE) == r  # earlier than the last look: not grown back
    later = observe(r, -5, 3.0, HALF_LIFE)
    assert later.mass == pytest.approx(5.0)
    assert later.at == 3.0


def test_demand_follows_consumed_counters() -> None:
    d = Demand(HALF_LIFE, MIN_WINDOW)
    assert d.see("b", 1, 0, consumed=500, balance=40, now=10.0) == 0  # first look: a baseline
    assert d.rate("b", 0, 10.0) == 0.0
    assert d.see("b", 1, 0, consumed=510, balance=30, now=10.1) == 10
    assert d.rate("b", 0, 10.1) == pytest.approx(100, rel=0.02)  # spread over the 0.1 s since
    assert d.see("b", 1, 0, consumed=505, balance=35, now=10.2) == 0  # a return: a new baseline
    assert d.see("b", 1, 0, consumed=515, balance=25, now=10.3) == 10
    assert d.idle_s("b", 0, 10.8) == pytest.approx(0.5)
    assert d.see("b", 2, 0, consumed=3, balance=0, now=10.4) == 0  # rebuilt: everything starts over
    assert d.rate("b", 0, 10.4) == 0.0


def test_demand_builds_the_states_slice_sizing_needs() -> None:
    d = Demand(HALF_LIFE, MIN_WINDOW)
    d.see_main("b", 1, 1000)
    for index, (balance, consumed) in enumerate([(100, 0), (50, 0), (7, 0)]):
        d.see("b", 1, index, consumed=consumed, balance=balance, now=0.0)
    d.see("b", 1, 0, consumed=8, balance=92, now=0.1)
    d.see("b", 1, 1, consumed=2, balance=48, now=0.1)
    budget = d.budget("b", 3, 0.1)
    assert budget == BudgetState(
        main=1000, remaining=1000 + 92 + 48 + 7, holders=3, total_rate=pytest.approx(100, rel=0.02)
    )
    assert d.holder("b", 0, 0.1, need=5) == HolderState(92, pytest.approx(80, rel=0.02), need=5)
    assert d.budget("b", 3, 0.1, main=900, fresh={2: 0}).remaining == 900 + 92 + 48
    assert d.total_rate("b", 3, 0.1) == pytest.approx(100, rel=0.02)
    assert d.total_rate("b", 1, 0.1) == pytest.approx(80, rel=0.02)
    d.moved("b", 2, balance=10, main=990, slice_=10)
    assert d.holder("b", 2, 0.1) == HolderState(10, 0.0, last_slice=10)  # no draw seen yet
    assert d.budget("b", 3, 0.1).main == 990
    d.forget("b")
    assert d.budget("b", 3, 0.1) == BudgetState(0, 0, 3, 0.0)


@pytest.mark.parametrize("every", [0.1, 1.0, 5.0, 10.0])
def test_sparse_looks_at_a_steady_stream_read_its_rate_between_them(every: float) -> None:
    """0.9 units a second, its counter looked at every ``every`` s (several half-lives apart, as
    the filler looks at a budget whose sub-buckets hold many draws): the rate reads the same just
    after a look and just before the next, not several times it and a fraction of it."""
    d = Demand(HALF_LIFE, MIN_WINDOW)
    t = 0.0
    d.see("b", 1, 0, consumed=0, balance=100, now=t)
    while t < 60:
        t += every
        d.see("b", 1, 0, consumed=round(0.9 * t * 1000), balance=100, now=t)  # in thousandths
        assert d.rate("b", 0, t) / 1000 == pytest.approx(0.9, rel=0.05), t
        assert d.rate("b", 0, t + 0.99 * every) / 1000 == pytest.approx(0.9, rel=0.05), t


def test_a_unit_every_few_seconds_still_shows_a_rate() -> None:
    """A holder drawing one unit between looks 5 s apart (0.2 a second) is drawing, not idle."""
    d = Demand(HALF_LIFE, MIN_WINDOW)
    d.see("b", 1, 0, consumed=0, balance=10, now=0.0)
    for n in range(1, 6):
        d.see("b", 1, 0, consumed=n, balance=10 - n, now=5.0 * n)
        assert d.rate("b", 0, 5.0 * n) == pytest.approx(0.2, rel=0.25)


def test_a_rate_is_measured_from_the_second_look_on() -> None:
    d = Demand(HALF_LIFE, MIN_WINDOW)
    assert not d.measured("b", 0)
    d.see("b", 1, 0, consumed=5, balance=10, now=1.0)
    assert not d.measured("b", 0)  # a baseline: its rate reads 0, but is not known
    d.see("b", 1, 0, consumed=5, balance=10, now=1.1)
    assert d.measured("b", 0)  # nothing consumed since: 0 is its rate
    d.see("b", 2, 0, consumed=0, balance=0, now=1.2)
    assert not d.measured("b", 0)  # a new generation starts over


def test_a_holders_draw_is_its_consumption_over_its_deductions() -> None:
    d = Demand(HALF_LIFE, MIN_WINDOW)
    d.see("b", 1, 0, consumed=0, balance=100, now=0.0, draws=0)
    assert d.holder("b", 0, 0.0).draw == 0  # nothing seen taken yet
    d.see("b", 1, 0, consumed=21, balance=79, now=1.0, draws=3)
    d.see("b", 1, 0, consumed=21, balance=79, now=2.0, draws=3)  # a look that sees nothing leaves it
    assert d.holder("b", 0, 2.0).draw == 7
    for n in range(3, 40):
        d.see("b", 1, 0, consumed=21 + 30 * (n - 2), balance=50, now=float(n), draws=3 + 10 * (n - 2))
    assert d.holder("b", 0, 40.0).draw == 3  # a moving average: it follows a change
    d.see("b", 1, 0, consumed=5000, balance=50, now=41.0)  # no count kept: no sample
    assert d.holder("b", 0, 41.0).draw == 3


def test_demand_from_a_per_deduction_hook() -> None:
    d = Demand(HALF_LIFE, MIN_WINDOW)
    for i in range(1, 101):
        d.observe("b", 3, 5, now=i * 0.05)
    assert d.rate("b", 3, 5.0) == pytest.approx(100, rel=0.03)
    assert d.idle_s("b", 3, 5.5) == pytest.approx(0.5)
