"""An agent's usage of a budget: what it reports and what the center applies (docs/agents.md).

Cumulative counters since the agent's journal began, so a lost, repeated or reordered report
changes nothing twice: the center applies the difference from the usage it applied last.
"""

from __future__ import annotations

from dataclasses import dataclass

from quota.v1 import session_pb2 as spb


@dataclass(frozen=True, slots=True)
class Usage:
    """Every field but ``reserved`` only grows; ``seq`` grows with every change."""

    seq: int = 0
    consumed: int = 0  # deducted plus confirmed
    returned: int = 0
    reserved: int = 0  # held in reservations now
    released: int = 0  # given back to the center

    @property
    def net(self) -> int:
        """What these counters took from the holding's balance."""
        return self.consumed - self.returned + self.reserved + self.released

    def net_since(self, applied: Usage) -> int:
        """What this usage took from the holding's balance that ``applied`` does not count.

        ``net - applied.net``, written out: the agent asks it on every request it serves.
        """
        return (
            self.consumed
            - applied.consumed
            - (self.returned - applied.returned)
            + (self.reserved - applied.reserved)
            + (self.released - applied.released)
        )


def usage_pb(budget_id: str, u: Usage) -> spb.Usage:
    return spb.Usage(
        budget_id=budget_id,
        seq=u.seq,
        consumed=u.consumed,
        returned=u.returned,
        reserved=u.reserved,
        released=u.released,
    )


def usage_from_pb(u: spb.Usage) -> Usage:
    return Usage(u.seq, u.consumed, u.returned, u.reserved, u.released)
