"""The agent's decisions, wired: serve a request from its slice, or forward it to the center (pure).

No I/O, no asyncio, no clock of its own: every call takes ``now`` (agent-monotonic ms). A request
the slice covers is answered by one synchronous call; anything else comes back as a ``Forward``
for the I/O edge to send to the center (docs/agents.md, "Serving").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from region_agent.core.books import Books, CounterStore, RecordStore
from region_agent.core.holdings import Holdings
from region_agent.core.records import NoRecordLog, Records
from region_agent.core.refill import RefillRules
from region_agent.core.reservations import Reservations
from region_agent.core.spending import Spending
from region_agent.core.waiting import SliceWaits

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Config:
    retention_ms: int = 7 * DAY_MS
    max_records: int = 1_000_000
    reservation_ttl_ms: int = 300_000
    reservation_max_ttl_ms: int = DAY_MS
    # unix ms = agent-monotonic ms + this (a reservation's expires_at_ms is told in unix ms).
    unix_offset_ms: int = 0
    rules: RefillRules = field(default_factory=RefillRules)


class Agent:
    """The budgets this agent holds, its request records, and every decision on them.

    The parts share the books (``Books``); each call below is the part's own method, bound here,
    so a request costs no call more than the decision itself.
    """

    def __init__(
        self,
        journal: CounterStore,
        config: Config | None = None,
        *,
        now: int = 0,
        record_log: RecordStore | None = None,
    ) -> None:
        self.config = c = config or Config()
        self.journal = journal
        self.log: RecordStore = record_log or NoRecordLog()
        self.records = Records(c.retention_ms, c.max_records)
        books = Books(
            journal,
            self.log,
            self.records,
            half_life_s=c.rules.rate_half_life_ms / 1000,
            now=now,
        )
        self.spending = Spending(books)
        self.reservations = Reservations(
            books,
            ttl_ms=c.reservation_ttl_ms,
            max_ttl_ms=c.reservation_max_ttl_ms,
            unix_offset_ms=c.unix_offset_ms,
        )
        self.holdings = Holdings(books, c.rules, self.reservations.held)
        waits = SliceWaits(books.slices)

        self.deduct = self.spending.deduct
        self.deduct_many = self.spending.deduct_many
        self.served = self.spending.served
        self.check_items = self.spending.check_items
        self.return_ = self.spending.return_
        self.remember = books.remember

        self.reserve = self.reservations.reserve
        self.confirm = self.reservations.confirm
        self.cancel = self.reservations.cancel

        self.adopt = self.holdings.adopt
        self.hear = self.holdings.hear
        self.forget_sold_out = self.holdings.forget_sold_out
        self.release = self.holdings.release
        self.answer_reclaim = self.holdings.answer_reclaim
        self.granted = self.holdings.granted
        self.track = self.holdings.track
        self.usage = self.holdings.usage
        self.available = self.holdings.available
        self.budgets = self.holdings.budgets
        self.slices = self.holdings.slices
        self.get = self.holdings.get
        self.wants_refill = self.holdings.wants_refill
        self.release_due = self.holdings.release_due
        self.observed_rate = self.holdings.observed_rate

        self.next_wait = waits.next_step

    def expire(self, now: int) -> int:
        """Release reservations past their TTL and forget records past retention; return how many expired."""
        expired = self.reservations.expire(now)
        self.records.prune(now)
        return expired
