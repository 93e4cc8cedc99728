"""An agent's usage of a budget: what it reports and what the center applies (docs/agents.md).

Cumulative counters since the agent's journal began, so a lost, repeated or reordered report
changes nothing twice: the center applies the difference from the usage it applied last.
"""

from __future__ import annotations

from dataclasses import dataclass

from quota.v1 import session_pb2 as spb
from quota_rules.limits import MAX_AMOUNT, InvalidInput


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


def usage_pb(budget_id: str, u: Usage, available: int | None = None) -> spb.Usage:
    """A report; an agent adds what it may still spend by its own account (``available``)."""
    return spb.Usage(
        budget_id=budget_id,
        seq=u.seq,
        consumed=u.consumed,
        returned=u.returned,
        reserved=u.reserved,
        released=u.released,
        available=available,
    )


def usage_from_pb(u: spb.Usage) -> Usage:
    return Usage(u.seq, u.consumed, u.returned, u.reserved, u.released)


def check_usage(budget_id: str, u: Usage) -> Usage:
    """A report the center may apply: InvalidInput (saying which rule it breaks) otherwise.

    Every counter is an integer in 0..2^53-1 and so is what it takes from a holding at most
    (consumed + reserved + released), so agent_report.lua's arithmetic on doubles stays exact.
    A refund is of a deduction counted in ``consumed`` first, so ``returned`` never exceeds it.
    Whether the counters went backwards, or spend more than the holding was granted, only the
    holding knows: agent_report.lua refuses those.
    """
    for name in ("seq", "consumed", "returned", "reserved", "released"):
        value = getattr(u, name)
        if not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(f"usage of {budget_id!r}: {name} {value} is outside 0..{MAX_AMOUNT}")
    if u.returned > u.consumed:
        raise InvalidInput(
            f"usage of {budget_id!r}: returned {u.returned} exceeds consumed {u.consumed} (a refund is of a"
            " deduction counted before)"
        )
    if u.consumed + u.reserved + u.released > MAX_AMOUNT:
        raise InvalidInput(f"usage of {budget_id!r}: consumed + reserved + released exceeds {MAX_AMOUNT}")
    return u
