"""What the agent holds of one budget: the center's last word (``Holding``) and its own counters (pure).

The agent keeps no balance of its own, only its cumulative ``Usage`` and the center's view of its
holding; what it may spend follows from the two (``BudgetSlice.available``, docs/agents.md,
"State, not events").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from quota_rules.modes import Mode
from quota_rules.rates import DecayingRate, observe
from quota_rules.usage import Usage


class State(enum.Enum):
    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Holding:
    """The center's view of this agent's holding of a budget (``AgentHolding`` on the wire).

    ``mode`` None: the center did not say (an unset enum on the wire); the agent then serves
    and refills as in NORMAL.
    """

    budget_id: str
    version: int
    balance: int
    applied: Usage
    lease_ms: int = 0
    mode: Mode | None = Mode.NORMAL
    state: State = State.ACTIVE
    lost: bool = False
    # The budget's sold-out mark when the center read this holding, with its version; None:
    # the center did not say.
    sold_out: bool | None = None
    availability: int = 0


@dataclass(slots=True)
class BudgetSlice:
    """One budget at this agent: the last holding adopted, the lease, the counters, the demand seen."""

    budget_id: str
    counters: Usage = field(default_factory=Usage)
    holding: Holding | None = None
    # Agent-monotonic ms before which the lease holds; 0: no lease yet.
    lease_deadline: int = 0
    rate: DecayingRate = field(default_factory=DecayingRate)
    # Agent-monotonic ms of the last local or forwarded spending request (for idle release).
    active_at: int = 0
    last_grant: int = 0  # the last slice the center granted (0: never)
    # Demand of the current millisecond not yet folded into ``rate``: requests in the same
    # millisecond decay alike, so adding them up first gives the same rate for one update.
    pending: int = 0
    pending_at: int = 0
    # The center's newest word on whether the budget is sold out, and its version: while it is,
    # a request this slice cannot cover is refused here (``serving.sold_out``).
    sold_out: bool = False
    availability: int = 0

    def hear(self, sold_out: bool, version: int) -> bool:
        """Take the center's sold-out mark if it is newer than the one held; True if taken."""
        if version <= self.availability:
            return False
        self.sold_out, self.availability = sold_out, version
        return True

    def note_demand(self, amount: int, now: int, half_life_s: float) -> None:
        """Count ``amount`` units asked for at ``now`` (agent-monotonic ms) as demand."""
        if now != self.pending_at:
            self.fold_demand(half_life_s)
            self.pending_at = now
        self.pending += amount

    def fold_demand(self, half_life_s: float) -> DecayingRate:
        """``rate`` with every demand noted so far; read it through this."""
        if self.pending:
            self.rate = observe(self.rate, self.pending, self.pending_at / 1000, half_life_s)
            self.pending = 0
        return self.rate

    def available(self) -> int:
        """Unreserved units this agent may still spend of its holding (0 without one, or once lost).

        ``balance - (net(counters) - net(applied))``: a lost, repeated or reordered message can
        only make it smaller. Not clamped at zero on purpose: a negative value means the center
        saw more than this agent counts (e.g. a report still in flight was applied), and nothing
        is served then.
        """
        h = self.holding
        if h is None or h.lost:
            return 0
        return h.balance - self.counters.net_since(h.applied)

    def lease_valid(self, now: int) -> bool:
        return now < self.lease_deadline
