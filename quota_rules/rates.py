"""Observed demand per holder: exponentially decaying rates, and what the center last saw of each.

The estimator is pure and clock-injected: every call takes ``now`` (seconds on any
monotonic clock). It keeps a decayed sum of the amounts observed, each weighted by
``2^(-age / half_life)``. For a steady stream of ``r`` units a second that has run
for ``t`` seconds the sum is ``r · τ · (1 − e^(−t/τ))`` with ``τ = half_life / ln 2``,
so dividing by that window gives ``r`` back exactly, from the first observation on
(no slow warm-up), and after a silence the rate halves every half-life.

``Demand`` keeps one estimator per (budget, sub-bucket) with the little else slice
sizing needs (last balance seen, last slice given, last activity). The filler feeds
it from the sub-buckets' ``consumed`` counters, which count every center process's
deductions; ``observe`` is there for a per-deduction hook instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from quota_rules.allocation import BudgetState, HolderState

# Below this much decayed demand (units) a holder counts as idle: an exponential never reaches
# zero on its own. A twentieth of a unit: one unit consumed over the several seconds between two
# looks (``observe_spread``) is worth less than a unit by the end of them, and a holder drawing a
# unit every few seconds still has a rate; one that stopped reads 0 after about 4.3 half-lives.
IDLE_MASS = 0.05
# Weight of each new sample in a holder's typical draw (a moving average).
DRAW_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class DecayingRate:
    """A decayed sum of observed amounts (``mass``) as of ``at``, observed since ``since``."""

    mass: float = 0.0
    at: float = 0.0
    since: float = 0.0

    @classmethod
    def starting(cls, now: float) -> DecayingRate:
        return cls(0.0, now, now)


def decayed(r: DecayingRate, now: float, half_life_s: float) -> DecayingRate:
    """``r`` as of ``now``; a clock that went backwards changes nothing."""
    dt = now - r.at
    if dt <= 0:
        return r
    return DecayingRate(r.mass * 2.0 ** (-dt / half_life_s), now, r.since)


def observe(r: DecayingRate, amount: float, now: float, half_life_s: float) -> DecayingRate:
    """``r`` with ``amount`` units consumed at ``now``; non-positive amounts only decay it."""
    d = decayed(r, now, half_life_s)
    if amount <= 0:
        return d
    return DecayingRate(d.mass + amount, d.at, d.since)


def observe_spread(
    r: DecayingRate, amount: float, start: float, now: float, half_life_s: float
) -> DecayingRate:
    """``r`` with ``amount`` units consumed evenly over ``(start, now]``: what a look at a counter
    sees since the look before. Taken as consumed at ``now`` instead, a look every few half-lives
    would read the rate at several times its value just after and a fraction of it just before."""
    d = decayed(r, now, half_life_s)
    if amount <= 0:
        return d
    span = now - start
    if span <= 0:
        return DecayingRate(d.mass + amount, d.at, d.since)
    # The integral of (amount / span) · 2^(-age / half_life) over the span.
    k = math.log(2) / half_life_s
    return DecayingRate(d.mass - amount * math.expm1(-k * span) / (k * span), d.at, d.since)


def per_second(r: DecayingRate, now: float, half_life_s: float, min_window_s: float) -> float:
    """The observed rate in units a second (0.0 once the decayed sum is below ``IDLE_MASS``).

    The window is at least ``min_window_s``, so a single amount seen right after
    observation began does not read as an enormous rate.
    """
    d = decayed(r, now, half_life_s)
    if d.mass < IDLE_MASS:
        return 0.0
    tau = half_life_s / math.log(2)
    age = max(0.0, now - d.since)
    window = -tau * math.expm1(-age / tau)
    return d.mass / max(window, min_window_s)


@dataclass(slots=True)
class _Holder:
    rate: DecayingRate
    active_at: float  # last time it consumed (or when observation began)
    consumed: int | None = None  # its consumed counter at the last look
    looked_at: float | None = None  # when ``see`` last looked at its counters
    balance: int = 0  # its balance at the last look, adjusted by our own transfers
    last_slice: int = 0
    draws: int | None = None  # its count of deductions at the last look, when it keeps one
    # Moving average of what it takes at a time: the consumption over the deductions between two
    # looks (``see``), or one deduction's amount (``observe``).
    draw: float = 0.0

    def drew(self, amount: float) -> None:
        self.draw = amount if self.draw == 0 else self.draw + DRAW_WEIGHT * (amount - self.draw)


@dataclass(slots=True)
class _Budget:
    gen: int
    main: int = 0
    holders: dict[int, _Holder] = field(default_factory=dict)


class Demand:
    """What this center process has observed of each sub-bucket (not shared between processes)."""

    def __init__(self, half_life_s: float, min_window_s: float = 0.1) -> None:
        self.half_life_s = half_life_s
        self.min_window_s = min_window_s
        self._budgets: dict[str, _Budget] = {}

    def see(
        self,
        budget_id: str,
        gen: int,
        index: int,
        *,
        consumed: int,
        balance: int,
        now: float,
        draws: int | None = None,
    ) -> int:
        """Record a sub-bucket's counters; return the consumption since the last look (≥ 0).

        ``draws`` counts the deductions it served: the consumption over the draws since the last
        look is a sample of the holder's typical draw (none without it). The first look, a new generation (sub-buckets rebuilt empty) and
        a counter that went down (a return) only set the baseline.
        """
        h = self._holder(budget_id, index, now, gen)
        delta = 0 if h.consumed is None else consumed - h.consumed
        counted = 0 if draws is None or h.draws is None else draws - h.draws
        since = now if h.looked_at is None else h.looked_at
        h.consumed, h.balance, h.draws, h.looked_at = consumed, balance, draws, now
        if delta <= 0:
            return 0
        h.rate = observe_spread(h.rate, delta, since, now, self.half_life_s)
        if counted > 0:
            h.drew(delta / counted)
        h.active_at = now
        return delta

    def see_main(self, budget_id: str, gen: int, balance: int) -> None:
        self._budget(budget_id, gen).main = balance

    def observe(self, budget_id: str, index: int, amount: int, now: float) -> None:
        """Record one served deduction (for a per-deduction hook; do not combine with ``see``)."""
        h = self._holder(budget_id, index, now)
        h.rate = observe(h.rate, amount, now, self.half_life_s)
        if amount > 0:
            h.drew(amount)
        h.active_at = now

    def moved(self, budget_id: str, index: int, *, balance: int, main: int, slice_: int = 0) -> None:
        """Update the snapshot after a transfer this process made; ``slice_``: the fill it got."""
        b = self._budgets.get(budget_id)
        if b is None or index not in b.holders:
            return
        b.main = main
        b.holders[index].balance = balance
        if slice_ > 0:
            b.holders[index].last_slice = slice_

    def rate(self, budget_id: str, index: int, now: float) -> float:
        """The holder's observed rate. Fed by ``see``, it is the rate as of the last look: what it
        consumed since is not known yet, so decaying it until the next look would only read low
        (a refill sized between two looks would be too small)."""
        b = self._budgets.get(budget_id)
        h = None if b is None else b.holders.get(index)
        if h is None:
            return 0.0
        at = now if h.looked_at is None else min(now, h.looked_at)
        return per_second(h.rate, at, self.half_life_s, self.min_window_s)

    def measured(self, budget_id: str, index: int) -> bool:
        """Whether ``see`` has looked at the holder twice: before that its rate is not known, not 0."""
        b = self._budgets.get(budget_id)
        h = None if b is None else b.holders.get(index)
        return h is not None and h.looked_at is not None and h.looked_at > h.rate.since

    def idle_s(self, budget_id: str, index: int, now: float) -> float:
        """Seconds since the holder last consumed (or since this process began to watch it)."""
        b = self._budgets.get(budget_id)
        h = None if b is None else b.holders.get(index)
        return 0.0 if h is None else max(0.0, now - h.active_at)

    def holder(
        self, budget_id: str, index: int, now: float, *, balance: int | None = None, need: int = 0
    ) -> HolderState:
        """The holder's state for slice sizing; ``balance`` overrides the last one seen."""
        b = self._budgets.get(budget_id)
        h = None if b is None else b.holders.get(index)
        seen = 0 if h is None else h.balance
        return HolderState(
            balance=seen if balance is None else balance,
            rate=self.rate(budget_id, index, now),
            need=need,
            last_slice=0 if h is None else h.last_slice,
            draw=0 if h is None else round(h.draw),
        )

    def budget(
        self,
        budget_id: str,
        holders: int,
        now: float,
        *,
        main: int | None = None,
        fresh: dict[int, int] | None = None,
    ) -> BudgetState:
        """The budget's state for slice sizing, from the last look; ``main`` and ``fresh`` balances override it.

        ``remaining`` is main plus what the sub-buckets held at the last look: transfers in
        flight are left out (they last milliseconds), so it errs low, towards smaller slices.
        """
        b = self._budgets.get(budget_id)
        seen = {} if b is None else {i: h.balance for i, h in b.holders.items()}
        seen.update(fresh or {})
        main_now = (0 if b is None else b.main) if main is None else main
        return BudgetState(
            main=main_now,
            remaining=main_now + sum(seen.values()),
            holders=holders,
            total_rate=self.total_rate(budget_id, holders, now),
        )

    def total_rate(self, budget_id: str, holders: int, now: float) -> float:
        """Sum of the observed rates of the budget's ``holders`` sub-buckets."""
        return sum(self.rate(budget_id, i, now) for i in range(holders))

    def forget(self, budget_id: str) -> None:
        self._budgets.pop(budget_id, None)

    def _budget(self, budget_id: str, gen: int | None) -> _Budget:
        b = self._budgets.get(budget_id)
        if b is None or (gen is not None and b.gen != gen):
            b = self._budgets[budget_id] = _Budget(gen if gen is not None else 0)
        return b

    def _holder(self, budget_id: str, index: int, now: float, gen: int | None = None) -> _Holder:
        b = self._budget(budget_id, gen)
        h = b.holders.get(index)
        if h is None:
            h = b.holders[index] = _Holder(DecayingRate.starting(now), active_at=now)
        return h
