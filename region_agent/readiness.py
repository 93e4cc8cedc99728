"""What the agent's health service says: alive, and ready for callers (docs/agents.md#probes).

Kubernetes restarts a pod that is not alive and sends callers only to pods that are ready. The
agent is alive while its loops run (a dead session loop never reconnects: a restart is the cure).
It is ready when a caller sent to it can be answered and what it serves is kept:

* its journal is still the file a restart would read (a journal deleted or replaced under it,
  say by a volume swapped away, would lose the counters of everything served since);
* and it can decide requests: its session with the center is open (requests its slices cannot
  cover are forwarded), or it holds a slice it may still spend (lease valid) while the center is
  out of reach. An agent with neither would only refuse: callers are better sent to another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from region_agent.core.slices import BudgetSlice


@dataclass(frozen=True, slots=True)
class Facts:
    journal_intact: bool
    session_up: bool
    spendable_slices: int


def ready(f: Facts) -> bool:
    """The readiness decision (pure)."""
    return f.journal_intact and (f.session_up or f.spendable_slices > 0)


def why_not(f: Facts) -> str:
    """Why the agent is not ready, for its log ("" when it is)."""
    if not f.journal_intact:
        return "its journal is no longer the file at its path: a restart would not find its counters"
    if not f.session_up and f.spendable_slices == 0:
        return "no session with the center and no slice it may spend"
    return ""


def spendable(slices: Iterable[BudgetSlice], now: int) -> int:
    """How many slices the agent may spend from now (lease valid, not lost, something left)."""
    return sum(
        1
        for s in slices
        if s.holding is not None and not s.holding.lost and s.lease_valid(now) and s.available() > 0
    )
