"""Whether a slice may serve a request, or the center must decide it (pure).

docs/agents.md, "Serving": a request the holding covers, under a valid lease, in a mode other than
CENTRAL, is served here; anything else is a ``Forward``, with a reason for metrics and logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from quota_rules import messages
from quota_rules.modes import Mode
from region_agent.core.slices import BudgetSlice, State

# Forward reasons that a slice on its way can cure: the request may wait for it
# (``region_agent.core.waiting``), and once forwarded it asks the center for a slice at once.
SLICE_HELPS = frozenset({"unknown", "no_holding", "short"})


@dataclass(frozen=True, slots=True)
class Forward:
    """The slice cannot serve this request: send it to the center.

    ``reason`` is a short label (for metrics and logs); the request id, if the call has one of
    its own, is now bound to the center (``region_agent.core.records``).
    """

    reason: str
    detail: str = ""
    # False: nothing was bound or changed (``deduct(..., wait=True)``); the caller may ask again.
    bound: bool = True


_NOT_SPENDABLE = {
    State.PAUSED: messages.PAUSED,
    State.CLOSED: messages.CLOSED,
    State.UNSPECIFIED: "budget {b} has no state at the center",
}


# Forward reasons that mean "this holding cannot cover it": refused here while the budget is sold out.
_SHORT_HERE = frozenset({"short", "central"})


def sold_out(s: BudgetSlice | None, why: Forward) -> bool:
    """True if the request ``why`` forwards is refused here: the center said the budget is sold out
    (nothing left anywhere) and this agent's own holding cannot cover it either."""
    return s is not None and s.sold_out and why.reason in _SHORT_HERE


def why_not_local(s: BudgetSlice | None, amount: int, now: int) -> Forward | None:
    """None if the slice ``s`` serves ``amount`` now; else why the center must decide."""
    if s is None:
        return Forward("unknown", "budget not held here")
    h = s.holding
    if h is None:
        return Forward("no_holding", "no holding of this budget yet")
    if h.lost:
        return Forward("lost", "the holding's lease ran out at the center")
    if h.state is not State.ACTIVE:
        return Forward("state", _NOT_SPENDABLE[h.state].format(b=s.budget_id))
    if h.mode is Mode.CENTRAL:
        return Forward("central", "the budget is in central mode")
    if not s.lease_valid(now):
        return Forward("lease", "the lease has run out")
    if s.available() < amount:
        return Forward("short", f"the slice holds {max(0, s.available())}, less than {amount}")
    return None
