"""Reservations made from the slice: reserve, confirm, cancel, expire; each ends exactly once (pure).

Answers and messages are the center's (``quota_rules.messages``); a reservation
this agent did not make is forwarded.
"""

from __future__ import annotations

from dataclasses import replace

from quota_rules import messages
from quota_rules.fingerprints import reserve_fingerprint
from quota_rules.limits import check_amount, check_budget_id, check_request_id
from quota_rules.ttl import resolve_ttl
from region_agent.core.books import Books
from region_agent.core.records import Answer, Record, Reservation, Served
from region_agent.core.serving import Forward, sold_out, why_not_local


class Reservations:
    """``unix_offset_ms``: unix ms = agent-monotonic ms + this (``expires_at_ms`` is told in unix ms)."""

    def __init__(self, books: Books, *, ttl_ms: int, max_ttl_ms: int, unix_offset_ms: int) -> None:
        self._books = books
        self._records = books.records
        self._ttl_ms = ttl_ms
        self._max_ttl_ms = max_ttl_ms
        self._unix_offset_ms = unix_offset_ms
        self._held: dict[str, Reservation] = {}

    def reserve(
        self, budget_id: str, request_id: str, amount: int, ttl_ms: int, now: int
    ) -> Answer | Forward:
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_amount(amount)
        ttl = resolve_ttl(ttl_ms, self._ttl_ms, self._max_ttl_ms)
        fingerprint = reserve_fingerprint(budget_id, amount, ttl_ms)
        prior = self._books.prior(request_id, fingerprint, messages.RESERVATION_MADE)
        if prior is not None:
            return prior
        s = self._books.slices.get(budget_id)
        if s is not None:
            self._books.note_demand(s, amount, now)
        refusal = why_not_local(s, amount, now)
        if refusal is not None:
            if sold_out(s, refusal):
                return Answer("INSUFFICIENT", message=messages.SOLD_OUT_HERE.format(b=budget_id, n=amount))
            return self._books.forward(request_id, fingerprint, refusal, now)
        assert s is not None
        c = s.counters
        expires_at_ms = now + ttl + self._unix_offset_ms
        r = Reservation(budget_id, fingerprint, amount, now + ttl, expires_at_ms, now)
        self._books.commit(s, replace(c, reserved=c.reserved + amount, seq=c.seq + 1), (request_id, r))
        self._records.put(request_id, r)
        self._held[request_id] = r
        return Answer("OK", amount, expires_at_ms=expires_at_ms)

    def confirm(self, budget_id: str, reservation_id: str, amount: int, now: int) -> Answer | Forward:
        check_budget_id(budget_id)
        check_request_id(reservation_id, "reservation_id")
        check_amount(amount)
        r = self._reservation(budget_id, reservation_id)
        if not isinstance(r, Reservation):
            return r
        rid = reservation_id
        if r.state == "held" and now >= r.expires_at:
            self._end(reservation_id, r, "expired")
        if r.state == "confirmed":
            if r.confirmed == amount:
                return Answer(
                    "EXISTS", amount, released=r.released, message=messages.CONFIRMED_ALREADY.format(r=rid)
                )
            return Answer("CONFLICT", message=messages.CONFIRMED_FOR.format(r=rid, n=r.confirmed))
        if r.state == "cancelled":
            return Answer("CANCELLED", message=messages.CANCELLED.format(r=rid))
        if r.state == "expired":
            return Answer("EXPIRED", message=messages.EXPIRED.format(r=rid))
        if amount > r.amount:
            return Answer("EXCEEDS_DEDUCTED", message=messages.HOLDS_ONLY.format(r=rid, n=r.amount))
        s = self._books.slice(budget_id, now)
        c = s.counters
        r.state, r.confirmed, r.released = "confirmed", amount, r.amount - amount
        counters = replace(c, consumed=c.consumed + amount, reserved=c.reserved - r.amount, seq=c.seq + 1)
        self._books.commit(s, counters, (reservation_id, r))
        del self._held[reservation_id]
        return Answer("OK", amount, released=r.released)

    def cancel(self, budget_id: str, reservation_id: str, now: int) -> Answer | Forward:
        check_budget_id(budget_id)
        check_request_id(reservation_id, "reservation_id")
        r = self._reservation(budget_id, reservation_id)
        if not isinstance(r, Reservation):
            return r
        rid = reservation_id
        if r.state == "cancelled":
            return Answer("EXISTS", released=r.amount, message=messages.CANCELLED_ALREADY.format(r=rid))
        if r.state == "confirmed":
            return Answer("CONFIRMED", message=messages.CONFIRMED.format(r=rid))
        if r.state == "expired":
            return Answer("EXPIRED", message=messages.EXPIRED.format(r=rid))
        if now >= r.expires_at:
            self._end(reservation_id, r, "expired")
            return Answer("EXPIRED", message=messages.EXPIRED.format(r=rid))
        self._end(reservation_id, r, "cancelled")
        return Answer("OK", released=r.amount)

    def expire(self, now: int) -> int:
        """Release the reservations past their TTL; return how many."""
        due = [(rid, r) for rid, r in self._held.items() if now >= r.expires_at]
        for rid, r in due:
            self._end(rid, r, "expired")
        return len(due)

    def held(self, budget_id: str) -> int:
        """What the reservations held here hold of ``budget_id``."""
        return sum(r.amount for r in self._held.values() if r.budget_id == budget_id)

    def _reservation(self, budget_id: str, reservation_id: str) -> Reservation | Answer | Forward:
        """This agent's reservation, the answer for an id it knows as something else, or Forward."""
        r: Record | None = self._records.get(reservation_id)
        if isinstance(r, Reservation) and r.budget_id == budget_id:
            return r
        if isinstance(r, Served | Reservation):
            # Served here, so the center does not know it either: it is not a reservation of this budget.
            message = messages.UNKNOWN_RESERVATION.format(r=reservation_id, b=budget_id)
            return Answer("UNKNOWN_REQUEST", message=message)
        return Forward("remote", "reservation not made here")

    def _end(self, reservation_id: str, r: Reservation, state: str) -> None:
        s = self._books.slice(r.budget_id, r.at)
        c = s.counters
        r.state = state
        if state != "confirmed":
            r.released = r.amount
        counters = replace(c, reserved=c.reserved - r.amount, seq=c.seq + 1)
        self._books.commit(s, counters, (reservation_id, r))
        self._held.pop(reservation_id, None)
