"""When the agent asks the center for a slice, and when it gives surplus back (pure).

The center sizes every grant (only it knows main and the other holders); the agent decides only
*when* to ask, with the center's own slice rules (``quota_rules.allocation``) in the mode the
center last told it, and reports the rate it observes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quota_rules.allocation import slice_for_mode, surplus, top_up
from quota_rules.limits import MAX_AMOUNT
from quota_rules.modes import Mode
from quota_rules.rates import per_second
from region_agent.core.slices import BudgetSlice, State

# The estimator's smallest window: one amount seen right after a start is not an enormous rate.
MIN_WINDOW_S = 0.1


@dataclass(frozen=True, slots=True)
class RefillRules:
    # A slice covers this much of the observed rate; below low_watermark_pct of it, refill.
    refill_horizon_ms: int = 2000
    low_watermark_pct: int = 25
    # Refill also when what is left would not last this long at the observed rate.
    lead_ms: int = 200
    # A budget with no spending for this long gives back all but ``keep`` units.
    release_idle_ms: int = 10_000
    keep: int = 1
    rate_half_life_ms: int = 2000

    @property
    def min_slice(self) -> int:
        """The floor of a slice, and what an idle budget keeps."""
        return max(1, self.keep)


def _mode(s: BudgetSlice) -> Mode:
    """The mode the center last told (NORMAL before it told one)."""
    h = s.holding
    return h.mode if h is not None and h.mode is not None else Mode.NORMAL


def rate_per_second(s: BudgetSlice, now: int, rules: RefillRules) -> float:
    """The demand observed on this budget (local and forwarded requests), units a second."""
    half_life_s = rules.rate_half_life_ms / 1000
    return per_second(s.fold_demand(half_life_s), now / 1000, half_life_s, MIN_WINDOW_S)


def observed_rate(s: BudgetSlice, now: int, rules: RefillRules) -> int:
    """The rate as the SliceRequest carries it: whole units a second, rounded up so demand shows."""
    return min(MAX_AMOUNT, math.ceil(rate_per_second(s, now, rules)))


def wants_refill(s: BudgetSlice, now: int, rules: RefillRules) -> bool:
    """True if a background SliceRequest should go out for this budget now.

    Not for a budget the center says is paused or closed, nor in central mode (the center
    grants nothing there); a holding marked lost may ask: the request carries the usage
    that settles it, and the center decides.
    """
    h = s.holding
    if h is not None and (h.state not in (State.ACTIVE, State.UNSPECIFIED) or h.mode is Mode.CENTRAL):
        return False
    rate = rate_per_second(s, now, rules)
    # Main is the center's to know: the slice is sized as if it could give any, and the center caps it.
    size = slice_for_mode(
        _mode(s),
        rate=rate,
        last_slice=s.last_grant,
        min_slice=rules.min_slice,
        max_slice=MAX_AMOUNT,
        horizon_ms=rules.refill_horizon_ms,
    )
    balance = max(0, s.available())
    return top_up(size, balance, rate, low_watermark_pct=rules.low_watermark_pct, lead_ms=rules.lead_ms) > 0


def release_due(s: BudgetSlice, now: int, rules: RefillRules) -> int:
    """Units to give back now: the surplus of an idle budget, or all of it in central mode."""
    h = s.holding
    if h is None or h.lost or not s.lease_valid(now):
        return 0
    mode = _mode(s)
    if mode is not Mode.CENTRAL and now - s.active_at < rules.release_idle_ms:
        return 0
    available = max(0, s.available())
    return min(available, surplus(mode, available, rules.min_slice))
