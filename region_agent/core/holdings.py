"""The center's side of each budget at this agent: holdings and leases adopted, surplus given back,
slices asked for (pure). The session (``region_agent.session``) carries it over the stream."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from quota_rules.limits import check_budget_id
from quota_rules.usage import Usage
from region_agent.core import refill
from region_agent.core.books import Books
from region_agent.core.slices import BudgetSlice, Holding

log = logging.getLogger(__name__)


class Holdings:
    """``reserved_here``: what the reservations held at this agent hold of a budget."""

    def __init__(self, books: Books, rules: refill.RefillRules, reserved_here: Callable[[str], int]) -> None:
        self._books = books
        self._slices = books.slices
        self._rules = rules
        self._reserved_here = reserved_here

    def adopt(self, holding: Holding, sent_at: int) -> bool:
        """Take the center's view of a holding; ``sent_at``: when the answered request was sent.

        An older version than the one held changes nothing. The lease is measured from the
        agent's send time, which is before the center set it, so the agent stops spending
        first. Returns False if the holding was ignored.
        """
        check_budget_id(holding.budget_id)
        s = self._books.slice(holding.budget_id, sent_at)
        if holding.sold_out is not None:
            s.hear(holding.sold_out, holding.availability)
        current = s.holding
        if current is not None and holding.version < current.version:
            return False
        if holding.applied.seq > s.counters.seq:
            # The center applied usage these counters do not have (a journal that lost its last
            # pages, or a new one): continue from what it applied, or the formula would let the
            # agent spend the difference twice.
            held = self._reserved_here(holding.budget_id)
            log.warning(
                "budget %s: the center applied usage seq %d, the journal has %d; continuing from it",
                holding.budget_id,
                holding.applied.seq,
                s.counters.seq,
            )
            a = holding.applied
            self._books.set(s, replace(a, reserved=held, seq=a.seq + (1 if held != a.reserved else 0)))
        s.holding = holding
        if holding.lease_ms > 0:
            # Answers can arrive out of order; the center's lease only moves forward.
            s.lease_deadline = max(s.lease_deadline, sent_at + holding.lease_ms)
        return True

    def hear(self, budget_id: str, sold_out: bool, version: int) -> bool:
        """The center's sold-out mark of a budget held here (ignored if older, or not held)."""
        s = self._slices.get(budget_id)
        return s is not None and s.hear(sold_out, version)

    def forget_sold_out(self) -> None:
        """The session ended: what the center said of sold-out budgets may be out of date."""
        for s in self._slices.values():
            s.sold_out, s.availability = False, 0

    def release(self, budget_id: str, amount: int) -> int:
        """Give back up to ``amount`` of the unreserved available balance; return what was given."""
        s = self._slices.get(budget_id)
        if s is None or amount <= 0:
            return 0
        give = min(amount, max(0, s.available()))
        if give > 0:
            c = s.counters
            self._books.set(s, replace(c, released=c.released + give, seq=c.seq + 1))
        return give

    def answer_reclaim(self, budget_id: str, amount: int) -> tuple[int, Usage]:
        """A ReclaimOrder: release up to ``amount`` now; the released units and the usage to report."""
        released = self.release(budget_id, amount)
        return released, self.usage(budget_id)

    def granted(self, budget_id: str, amount: int) -> None:
        """Note a slice the center granted (refill decisions treat a budget never granted as new)."""
        s = self._slices.get(budget_id)
        if s is not None and amount > 0:
            s.last_grant = amount

    def track(self, budget_id: str, now: int, amount: int = 0) -> None:
        """Start holding a budget the center knows (after a forwarded request it answered)."""
        check_budget_id(budget_id)
        s = self._books.slice(budget_id, now)
        if amount > 0 and s.last_grant == 0 and s.holding is None:
            s.note_demand(amount, now, self._books.half_life_s)

    def usage(self, budget_id: str) -> Usage:
        s = self._slices.get(budget_id)
        return Usage() if s is None else s.counters

    def available(self, budget_id: str) -> int:
        s = self._slices.get(budget_id)
        return 0 if s is None else max(0, s.available())

    def budgets(self) -> list[str]:
        return list(self._slices)

    def slices(self) -> Iterable[BudgetSlice]:
        return self._slices.values()

    def get(self, budget_id: str) -> BudgetSlice | None:
        return self._slices.get(budget_id)

    def wants_refill(self, budget_id: str, now: int) -> bool:
        s = self._slices.get(budget_id)
        return s is not None and refill.wants_refill(s, now, self._rules)

    def release_due(self, budget_id: str, now: int) -> int:
        s = self._slices.get(budget_id)
        return 0 if s is None else refill.release_due(s, now, self._rules)

    def observed_rate(self, budget_id: str, now: int) -> int:
        s = self._slices.get(budget_id)
        return 0 if s is None else refill.observed_rate(s, now, self._rules)
