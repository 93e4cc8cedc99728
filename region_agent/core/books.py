"""The agent's books: a slice per budget and the request records, and where both outlive the process.

Every change goes through here, its records first, then the counters that count them: the record
log erases on load the records whose counters never followed (a kill in between), so a request's
record and its effect survive a crash together or not at all (docs/agents.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from quota_rules.rates import DecayingRate
from quota_rules.usage import Usage
from region_agent.core.records import Answer, Forwarded, Record, Records, Reservation, answer_again
from region_agent.core.serving import Forward
from region_agent.core.slices import BudgetSlice

log = logging.getLogger(__name__)


class CounterStore(Protocol):
    """Where the cumulative counters live across restarts (``region_agent.storage.journal``)."""

    def load(self) -> dict[str, Usage]: ...

    def write(self, budget_id: str, counters: Usage) -> None: ...


class RecordStore(Protocol):
    """Where request records live across restarts (``region_agent.storage.record_log``)."""

    def load(self) -> list[tuple[str, Record]]: ...

    def write(self, request_id: str, record: Record, counter_seq: int) -> None: ...

    def write_many(self, records: Sequence[tuple[str, Record]], counter_seq: int) -> None: ...


class Books:
    """The slices and records of one agent, read back from ``journal`` and ``log`` at ``now``."""

    def __init__(
        self, journal: CounterStore, log: RecordStore, records: Records, *, half_life_s: float, now: int
    ) -> None:
        self.journal = journal
        self.log = log
        self.records = records
        self.slices: dict[str, BudgetSlice] = {}
        self.half_life_s = half_life_s
        self._load(now)

    def slice(self, budget_id: str, now: int) -> BudgetSlice:
        """The budget's slice, made (empty) if it is new here."""
        s = self.slices.get(budget_id)
        if s is None:
            s = self.slices[budget_id] = BudgetSlice(budget_id, active_at=now)
            s.rate = DecayingRate.starting(now / 1000)
        return s

    def set(self, s: BudgetSlice, counters: Usage) -> None:
        # Journal first: if it cannot take the write, nothing changed here either.
        self.journal.write(s.budget_id, counters)
        s.counters = counters

    def commit(self, s: BudgetSlice, counters: Usage, *changed: tuple[str, Record]) -> None:
        """Write the changed records, then the counters that count them."""
        for request_id, record in changed:
            self.log.write(request_id, record, counters.seq)
        self.set(s, counters)

    def note_demand(self, s: BudgetSlice, amount: int, now: int) -> None:
        """Count a spending request as demand on its budget, and the budget as active."""
        s.note_demand(amount, now, self.half_life_s)
        s.active_at = now

    def prior(self, request_id: str, fingerprint: str, applied: str) -> Answer | Forward | None:
        """The answer to a request id seen before; None for a new one."""
        r = self.records.get(request_id)
        return None if r is None else answer_again(r, request_id, fingerprint, applied)

    def forward(self, request_id: str, fingerprint: str, why: Forward, now: int) -> Forward:
        """Bind ``request_id`` to the center (unless it is bound already) and say ``why``."""
        if self.records.get(request_id) is None:
            # The id is bound to the center for good, also across a restart: a retry served
            # from the slice could apply a second time what the center already applied.
            record = Forwarded(fingerprint, now)
            self.log.write(request_id, record, 0)
            self.records.put(request_id, record)
        return why

    def remember(self, request_id: str, answer: Answer) -> bool:
        """Keep the center's answer to a forwarded request, if it took effect, for retries here.

        A refusal is not kept, as at the center: the same request retried later (after a
        top-up, say) is forwarded again and may succeed.
        """
        r = self.records.get(request_id)
        if not isinstance(r, Forwarded) or answer.code not in ("OK", "EXISTS"):
            return False
        r.answer = answer
        return True

    def _load(self, now: int) -> None:
        held: dict[str, list[tuple[str, Reservation]]] = {}
        for request_id, record in self.log.load():
            self.records.put(request_id, record)
            if isinstance(record, Reservation) and record.state == "held":
                held.setdefault(record.budget_id, []).append((request_id, record))
        for budget_id, counters in self.journal.load().items():
            s = self.slices[budget_id] = BudgetSlice(budget_id, counters, active_at=now)
            s.rate = DecayingRate.starting(now / 1000)
            if counters.reserved or budget_id in held:
                # The reservations of a process that died are not held on (their TTL timers
                # died with it): what they held goes back to the slice, and their records say
                # they expired, so a later confirm gets EXPIRED and the amount is spendable.
                log.warning(
                    "budget %s: releasing %d reserved by a previous run", budget_id, counters.reserved
                )
                ended = replace(counters, reserved=0, seq=counters.seq + (1 if counters.reserved else 0))
                for request_id, r in held.get(budget_id, []):
                    r.state, r.released = "expired", r.amount
                    self.log.write(request_id, r, ended.seq)
                self.set(s, ended)
        self.records.prune(now)
