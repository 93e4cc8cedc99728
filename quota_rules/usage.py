"""An agent's cumulative usage of one budget: what it keeps in its journal and reports, and what the
center stores as applied to its holding (docs/agents.md, "State, not events")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Cumulative usage since the journal began; every field but ``reserved`` only grows."""

    consumed: int = 0  # deducted plus confirmed
    returned: int = 0
    reserved: int = 0  # held in reservations now
    released: int = 0  # given back to the center
    seq: int = 0  # grows with every change, so the center applies each report at most once

    def net(self) -> int:
        """What this usage took from the holding's balance."""
        return self.consumed - self.returned + self.reserved + self.released

    def covers(self, other: Usage) -> bool:
        """True if this usage is at least as far along as ``other`` (by seq)."""
        return self.seq >= other.seq
