"""When the agent asks the center for a slice, and when it gives surplus back (pure).

The center sizes every grant, because only it knows what main holds and what the other
holders draw; the agent decides only *when* to ask and reports the rate it observes. It reuses
the center's slice rules (``quota_rules.allocation``) with what it knows: main is unknown, so
it stands at the maximum (the center caps the grant), and the budget's mode is the one the
center last told, which ``_remaining`` turns back into the "what is left" that gives that mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quota_rules.allocation import BudgetState, HolderState, fill_amount, release_amount
from quota_rules.limits import MAX_AMOUNT
from quota_rules.policy import Policy
from quota_rules.rates import per_second
from region_agent.slices import BudgetSlice, Mode, State

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

    def policy(self) -> Policy:
        # Thresholds 2 and 1 only serve ``_remaining``: mode_for(policy, _remaining(mode)) == mode.
        return Policy(
            min_slice=max(1, self.keep),
            max_slice=MAX_AMOUNT,
            refill_horizon_ms=self.refill_horizon_ms,
            low_watermark_pct=self.low_watermark_pct,
            scarcity_threshold=2,
            central_threshold=1,
        )


def _remaining(mode: Mode) -> int:
    return {Mode.CENTRAL: 0, Mode.SCARCE: 1}.get(mode, MAX_AMOUNT)


def rate_per_second(s: BudgetSlice, now: int, rules: RefillRules) -> float:
    """The demand observed on this budget (local and forwarded requests), units a second."""
    half_life_s = rules.rate_half_life_ms / 1000
    return per_second(s.fold_demand(half_life_s), now / 1000, half_life_s, MIN_WINDOW_S)


def observed_rate(s: BudgetSlice, now: int, rules: RefillRules) -> int:
    """The rate as the SliceRequest carries it: whole units a second, rounded up so demand shows."""
    return min(MAX_AMOUNT, math.ceil(rate_per_second(s, now, rules)))


def _states(s: BudgetSlice, now: int, rules: RefillRules) -> tuple[BudgetState, HolderState]:
    mode = s.holding.mode if s.holding is not None else Mode.NORMAL
    rate = rate_per_second(s, now, rules)
    budget = BudgetState(main=MAX_AMOUNT, remaining=_remaining(mode), holders=1, total_rate=rate)
    holder = HolderState(balance=max(0, s.available()), rate=rate, last_slice=s.last_grant)
    return budget, holder


def wants_refill(s: BudgetSlice, now: int, rules: RefillRules) -> bool:
    """True if a background SliceRequest should go out for this budget now.

    Not for a budget the center says is paused or closed, nor in central mode (the center
    grants nothing there); a holding marked lost may ask: the request carries the usage
    that settles it, and the center decides.
    """
    h = s.holding
    if h is not None and (h.state not in (State.ACTIVE, State.UNSPECIFIED) or h.mode is Mode.CENTRAL):
        return False
    budget, holder = _states(s, now, rules)
    return fill_amount(rules.policy(), budget, holder, lead_ms=rules.lead_ms) > 0


def release_due(s: BudgetSlice, now: int, rules: RefillRules) -> int:
    """Units to give back now: the surplus of an idle budget, or all of it in central mode."""
    h = s.holding
    if h is None or h.lost or not s.lease_valid(now):
        return 0
    central = h.mode is Mode.CENTRAL
    if not central and now - s.active_at < rules.release_idle_ms:
        return 0
    budget, holder = _states(s, now, rules)
    return min(max(0, s.available()), release_amount(rules.policy(), budget, holder))
