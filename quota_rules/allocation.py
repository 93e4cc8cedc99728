"""Slice sizing: how much a holder gets from the main bucket, and when (pure).

Shared by the center's sub-buckets (topped up in the background by
``quota_center/refill/background.py``, refilled on demand by ``quota_center/refill/cover.py``),
its grants to agents, and the agents' own choice of when to ask (with the mode they were told).
Each decision
is a plain function of the budget's policy and two small snapshots, so it is
table-tested and can be simulated. Amounts are ``int`` (minor units); rates are
``float`` (units per second) and only ever turn into amounts through exact
rational arithmetic, rounded to whole units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from quota_rules.limits import MAX_AMOUNT
from quota_rules.modes import Mode, mode_for
from quota_rules.policy import Policy

# In SCARCE mode a slice covers this fraction of the refill horizon's demand.
SCARCE_HORIZON_DIVISOR = 4

# No real holder draws 2^53 units a second; capping rates keeps every product finite.
MAX_RATE = float(MAX_AMOUNT)

# In NORMAL mode a holder's slice covers at least this many of its draws: a refill is a ledger
# transfer, many times a deduction's cost, so a holder drawing less than this many times over
# the horizon (most budgets of a platform with many of them) would otherwise pay one per draw.
MIN_DRAWS = 32


@dataclass(frozen=True, slots=True)
class BudgetState:
    """What the budget still has, and how hard its holders draw on it."""

    main: int  # balance of the main bucket
    # What the budget can still spend: total - consumed - reserved - in doubt, which is
    # main + held + in flight; callers pass main + held (``free`` in ``modes``), leaving
    # out transfers in flight, which last milliseconds.
    remaining: int
    holders: int  # holders sharing main: sub-buckets, or agents
    total_rate: float = 0.0  # sum of the holders' observed rates, units per second


@dataclass(frozen=True, slots=True)
class HolderState:
    """One holder as the center sees it."""

    balance: int
    rate: float = 0.0  # observed demand, units per second
    need: int = 0  # the request it must cover now; 0 for a background refill
    last_slice: int = 0  # 0: it never got a slice (a newcomer)
    # What it typically takes at a time (units; 0: not known): see ``rates.Demand``.
    draw: int = 0


def slice_size(policy: Policy, budget: BudgetState, holder: HolderState) -> int:
    """Units to move from main to ``holder`` now; 0 means nothing (or, with a need, merge first).

    In order:

    1. **Main cannot cover the need**: 0; the caller merges the other holders' fragments.
    2. **Mode** (``modes.mode_for`` on ``remaining``, so the thresholds mean the same
       everywhere): CENTRAL gives exactly the need, and nothing in the background, so
       the last units are never parked where a request hashed elsewhere cannot reach
       them. SCARCE gives what the holder draws over a quarter of the horizon within
       its fair share of main, unclamped by ``max_slice`` (at least ``max(need, min_slice)``):
       small enough that little is stranded in fragments, which reclaim rounds and
       merges bring back, large enough that a busy agent keeps serving locally.
    3. **Demand** (NORMAL): ``rate × refill_horizon``, what the holder will spend
       before its next refill, and at least ``MIN_DRAWS`` of its typical draws (a holder
       drawing a few times a minute still refills once per many deductions, not after
       each), capped by its **fair share** of main,
       ``main × rate / Σ rates`` (Doorman's proportional share: a holder drawing 80 %
       of the budget's demand may take 80 % of main, so one hot holder cannot drain
       main while the others starve). Without rate information there is no evidence
       to size by: a newcomer, or a holder with a request but no rate while others
       draw, asks for ``min_slice`` (``MIN_DRAWS`` of its draws when it has drawn
       before: too rarely to show a rate); when no holder has a rate yet (a cold budget,
       or a caller that tracks none) a request gets an equal share, ``main / holders``,
       the static split.
    4. **Clamp** to ``[min_slice, max_slice]``: the floor keeps refills from being
       absurdly small, the ceiling bounds what one holder can strand.
    5. Never less than the need, never more than main.

    In the background (``need == 0``) an idle holder, one with a rate of 0 that has
    had a slice before, gets nothing in any mode: a slice would only be stranded.
    """
    main = max(0, budget.main)
    need = max(0, holder.need)
    if need > main:
        return 0
    mode = mode_for(policy, max(0, budget.remaining))
    due = slice_for_mode(
        mode,
        need=need,
        rate=holder.rate,
        last_slice=holder.last_slice,
        share=fair_share(budget, holder),
        others_draw=_clean_rate(budget.total_rate) > 0,
        min_slice=policy.min_slice,
        max_slice=policy.max_slice,
        horizon_ms=policy.refill_horizon_ms,
        draw=holder.draw,
    )
    return min(main, due)


def slice_for_mode(
    mode: Mode,
    *,
    rate: float,
    last_slice: int,
    min_slice: int,
    max_slice: int,
    horizon_ms: int,
    need: int = 0,
    share: int = MAX_AMOUNT,
    others_draw: bool = False,
    draw: int = 0,
) -> int:
    """``slice_size`` once the mode is known, before main caps it (steps 2 to 5 there).

    ``share`` is the holder's fair share of main; ``others_draw``: some holder has a rate;
    ``draw``: what the holder typically takes at a time (0 when not known). An
    agent knows its mode (the center tells it) but not main nor the other holders: it leaves
    ``share`` at the maximum, and the center caps the grant.
    """
    if mode is Mode.CENTRAL:
        return need
    rate = _clean_rate(rate)
    if need == 0 and rate == 0 and last_slice > 0:
        return 0  # idle
    if mode is Mode.SCARCE:
        # What the holder draws over a quarter of the horizon, within its fair share of main: small
        # enough that little is stranded (fragments go back by reclaim rounds and merges), large
        # enough that a busy holder keeps serving between refills.
        wanted = min(demand(rate, horizon_ms // SCARCE_HORIZON_DIVISOR), share) if rate > 0 else min_slice
        return max(need, min_slice, wanted)
    draws = min(MAX_AMOUNT, MIN_DRAWS * max(0, draw))
    if rate > 0:
        wanted = min(max(demand(rate, horizon_ms), draws), share)
    elif need > 0 and not others_draw:
        wanted = share  # nobody has a rate: an equal share
    elif need > 0 and draws > 0:
        wanted = draws  # it draws too rarely to show a rate, and draws now: not a refill per draw
    else:
        wanted = min_slice  # a newcomer, or no demand seen while others draw
    size = min(max_slice, max(min_slice, wanted))
    return max(need, size)


def fair_share(budget: BudgetState, holder: HolderState) -> int:
    """The holder's share of main: proportional to its rate, equal when no holder has one."""
    main = max(0, budget.main)
    total = _clean_rate(budget.total_rate)
    if total == 0:
        return main // max(1, budget.holders)
    rate = _clean_rate(holder.rate)
    # A holder's own rate is part of the total; a caller's stale total must not inflate the share.
    # Exact: each float is a ratio of integers (cheaper than Fraction, on the filler's hot path).
    a, b = rate.as_integer_ratio()
    c, d = max(total, rate).as_integer_ratio()
    return main * a * d // (b * c)


def demand(rate: float, horizon_ms: int) -> int:
    """Units a holder drawing ``rate`` units a second spends over ``horizon_ms``, rounded up."""
    n, d = _clean_rate(rate).as_integer_ratio()
    units = -(-n * max(0, horizon_ms) // (d * 1000))  # exact, rounded up
    return min(MAX_AMOUNT, units)


def fill_amount(policy: Policy, budget: BudgetState, holder: HolderState, lead_ms: int = 0) -> int:
    """Background top-up: the slice to add if the holder is below its low watermark, else 0.

    The watermark is ``low_watermark_pct`` of the slice it would get now (which
    follows its current rate, unlike its last slice), and at least what it spends
    in ``lead_ms`` (the filler passes twice its interval), so that it is topped up
    before it runs dry even when its slice is clamped small.
    """
    size = slice_size(policy, budget, replace(holder, need=0))
    return top_up(
        size, holder.balance, holder.rate, low_watermark_pct=policy.low_watermark_pct, lead_ms=lead_ms
    )


def top_up(size: int, balance: int, rate: float, *, low_watermark_pct: int, lead_ms: int) -> int:
    """``size``, the slice a holder would get now, if its ``balance`` is below its watermarks, else 0."""
    if size <= 0:
        return 0
    return (
        size if balance < watermark(size, rate, low_watermark_pct=low_watermark_pct, lead_ms=lead_ms) else 0
    )


def watermark(size: int, rate: float, *, low_watermark_pct: int, lead_ms: int) -> int:
    """The balance below which a holder is topped up with ``size``: ``low_watermark_pct`` of it,
    and at least what the holder spends in ``lead_ms``."""
    return max(-(-size * low_watermark_pct // 100), demand(rate, lead_ms))


def fill_due_in(policy: Policy, budget: BudgetState, holder: HolderState, lead_ms: int = 0) -> float:
    """Seconds until ``fill_amount`` would top the holder up at its rate: 0 when it would now,
    ``inf`` when it draws nothing or would get nothing. A faster draw, or main shrinking (which
    only shrinks the slice, and so the watermark), changes it: callers look again well before."""
    size = slice_size(policy, budget, replace(holder, need=0))
    if size <= 0:
        return math.inf
    rate = _clean_rate(holder.rate)
    mark = watermark(size, rate, low_watermark_pct=policy.low_watermark_pct, lead_ms=lead_ms)
    if holder.balance < mark:
        return 0.0
    return math.inf if rate == 0 else (holder.balance - mark + 1) / rate


def release_amount(policy: Policy, budget: BudgetState, holder: HolderState) -> int:
    """What an idle holder gives back to main: everything above ``min_slice``.

    The floor serves the next small request without a wait. In central mode there
    is no floor: every unit goes back where any request can reach it.
    """
    return surplus(mode_for(policy, max(0, budget.remaining)), holder.balance, policy.min_slice)


def surplus(mode: Mode, balance: int, min_slice: int) -> int:
    """``release_amount`` once the mode is known: ``balance`` above the floor of ``mode``."""
    floor = 0 if mode is Mode.CENTRAL else min_slice
    return max(0, balance - floor)


def refill_amount(*, need: int, main_balance: int, policy: Policy) -> int:
    """The on-demand refill when no demand is observed (the filler is off): ``slice_size``
    without rate information.

    With no rates and no mode information (``grant_for`` applies the mode) it is the
    equal-share slice, clamped, at least ``need``, at most main, and 0 when main cannot
    cover ``need``.
    """
    if need <= 0:
        return 0
    budget = BudgetState(main=main_balance, remaining=MAX_AMOUNT, holders=policy.sub_buckets)
    return slice_size(policy, budget, HolderState(balance=0, need=need))


def _clean_rate(rate: float) -> float:
    """A usable rate: NaN and negatives are no demand, anything huge is capped."""
    if math.isnan(rate) or rate <= 0:
        return 0.0
    return min(rate, MAX_RATE)
