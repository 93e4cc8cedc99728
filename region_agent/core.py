"""The agent's decisions: serve a request from the slice, or forward it to the center (pure).

No I/O, no asyncio, no clock of its own: every call takes ``now`` (agent-monotonic ms), and
the counters go to a ``CounterStore`` (the memory-mapped journal in production, a dict in
tests) and the request records to a ``RecordStore`` (the memory-mapped record log, or memory
only), whose writes are stores to memory. A change writes its records first, then the
counters: the record log erases, on load, records whose counters never followed (a kill in
between), so a request's record and its effect survive a crash together or not at all. A
request the slice covers is answered by one synchronous call; anything else comes back as a
``Forward`` for the I/O edge to send to the center (docs/agents.md, "Serving").

Bad input raises ``quota_rules.limits.InvalidInput`` before anything changes, with the
center's own checks and messages. Result codes and their messages follow the center's
(``quota_center.spending.deductions``, ``quota_center.spending.reservations``), so a caller cannot tell who answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from quota_rules.limits import (
    MAX_AMOUNT,
    InvalidInput,
    check_amount,
    check_budget_id,
    check_request_id,
)
from quota_rules.rates import DecayingRate
from region_agent import refill
from region_agent.records import (
    Answer,
    Forwarded,
    NoRecordLog,
    Record,
    Records,
    Reservation,
    Served,
    same_request,
)
from region_agent.slices import BudgetSlice, Counters, Holding, Mode, State

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
# Forward reasons that a slice on its way can cure (see ``Agent.wait_reason``).
_SLICE_HELPS = frozenset({"unknown", "no_holding", "short"})
_OK_ANSWERS_KEPT = 4096  # distinct amounts whose OK answer is shared


class CounterStore(Protocol):
    """Where the cumulative counters live across restarts (``region_agent.journal``)."""

    def load(self) -> dict[str, Counters]: ...

    def write(self, budget_id: str, counters: Counters) -> None: ...


class RecordStore(Protocol):
    """Where request records live across restarts (``region_agent.record_log``)."""

    def load(self) -> list[tuple[str, Record]]: ...

    def write(self, request_id: str, record: Record, counter_seq: int) -> None: ...

    def write_many(self, records: Sequence[tuple[str, Record]], counter_seq: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Forward:
    """The slice cannot serve this request: send it to the center.

    ``reason`` is a short label (for metrics and logs); the request id, if the call has one of
    its own, is now bound to the center (see ``records``).
    """

    reason: str
    detail: str = ""
    # False: nothing was bound or changed (``deduct(..., wait=True)``); the caller may ask again.
    bound: bool = True


@dataclass(frozen=True, slots=True)
class Decided:
    """What ``deduct_many`` decided: an answer per item, None for the items of ``waiting`` budgets."""

    answers: list[Answer | Forward | None]
    waiting: dict[str, int] = field(default_factory=dict)  # budget -> units its undecided items ask


@dataclass(frozen=True, slots=True)
class Config:
    retention_ms: int = 7 * DAY_MS
    max_records: int = 1_000_000
    reservation_ttl_ms: int = 300_000
    reservation_max_ttl_ms: int = DAY_MS
    # unix ms = agent-monotonic ms + this (a reservation's expires_at_ms is told in unix ms).
    unix_offset_ms: int = 0
    rules: refill.RefillRules = field(default_factory=refill.RefillRules)


def resolve_ttl(ttl_ms: int, default_ms: int, max_ms: int) -> int:
    """The TTL a reservation gets; the rule of ``quota_center.spending.reservations.resolve_ttl``."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
        raise InvalidInput("ttl_ms must be an integer number of milliseconds")
    if ttl_ms < 0:
        raise InvalidInput(f"ttl_ms must not be negative, got {ttl_ms} (0 takes the default {default_ms})")
    if ttl_ms > max_ms:
        raise InvalidInput(f"ttl_ms {ttl_ms} exceeds the maximum {max_ms}")
    return ttl_ms or default_ms


# Fingerprints as the center binds request ids (quota_center.spending.deductions, quota_center.spending.reservations).
def deduct_fingerprint(budget_id: str, amount: int) -> str:
    return f"deduct|{budget_id}|{amount}"


def return_fingerprint(budget_id: str, amount: int, deduction_id: str) -> str:
    return f"return|{budget_id}|{amount}|{deduction_id}"


def reserve_fingerprint(budget_id: str, amount: int, ttl_ms: int) -> str:
    return f"reserve|{budget_id}|{amount}|{ttl_ms}"


_NOT_SPENDABLE = {
    State.PAUSED: "budget {b} is paused",
    State.CLOSED: "budget {b} is closed",
    State.UNSPECIFIED: "budget {b} has no state at the center",
}


class Agent:
    """The budgets this agent holds, its request records, and every decision on them."""

    def __init__(
        self,
        journal: CounterStore,
        config: Config | None = None,
        *,
        now: int = 0,
        record_log: RecordStore | None = None,
    ) -> None:
        self.journal = journal
        self.config = config or Config()
        self.log: RecordStore = record_log or NoRecordLog()
        self.records = Records(self.config.retention_ms, self.config.max_records)
        self._half_life_s = self.config.rules.rate_half_life_ms / 1000
        self._ok_answers: dict[int, Answer] = {}
        self._slices: dict[str, BudgetSlice] = {}
        self._held: dict[str, Reservation] = {}
        held: dict[str, list[tuple[str, Reservation]]] = {}
        for request_id, record in self.log.load():
            self.records.put(request_id, record)
            if isinstance(record, Reservation) and record.state == "held":
                held.setdefault(record.budget_id, []).append((request_id, record))
        for budget_id, counters in journal.load().items():
            s = self._slices[budget_id] = BudgetSlice(budget_id, counters, active_at=now)
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
                self._set(s, ended)
        self.records.prune(now)

    # ---- spending ---------------------------------------------------------------------------

    def deduct(
        self, budget_id: str, request_id: str, amount: int, now: int, *, wait: bool = False
    ) -> Answer | Forward:
        """Serve a deduction from the slice, or say why the center must decide it.

        With ``wait``, a request that a slice on its way could serve (``wait_reason``) comes
        back as a ``Forward`` with ``bound=False`` and nothing changed, so that the caller can
        wait for the slice and ask again; otherwise a ``Forward`` binds the id to the center.
        """
        s = self._slices.get(budget_id)
        if s is None:
            check_budget_id(budget_id)  # a budget held here was checked when first met
        check_request_id(request_id)
        check_amount(amount)
        fingerprint = f"deduct|{budget_id}|{amount}"  # deduct_fingerprint, inline on the hot path
        prior = self.records.get(request_id)
        if prior is not None:
            return self._prior_answer(prior, request_id, fingerprint, "request {r} was already applied")
        refusal = self._why_not_local(s, amount, now)
        if refusal is not None:
            if wait and refusal.reason in _SLICE_HELPS:
                return replace(refusal, bound=False)
            if s is not None:
                self._note_demand(s, amount, now)
            return self._forward(request_id, fingerprint, refusal, now)
        assert s is not None
        self._note_demand(s, amount, now)
        c = s.counters
        counters = Counters(c.consumed + amount, c.returned, c.reserved, c.released, c.seq + 1)
        answer = self._ok(amount)
        record = Served("deduct", budget_id, fingerprint, answer, now)
        self.log.write(request_id, record, counters.seq)  # the record first, then its counters
        self._set(s, counters)
        self.records.put(request_id, record)
        return answer

    def check_items(self, items: Sequence[tuple[str, str, int]]) -> None:
        """Check every (budget, request id, amount) of a batch; InvalidInput names the first bad one."""
        for i, (budget_id, request_id, amount) in enumerate(items):
            try:
                if budget_id not in self._slices:  # a budget held here was checked when first met
                    check_budget_id(budget_id)
                check_request_id(request_id)
                check_amount(amount)
            except InvalidInput as exc:
                raise InvalidInput(f"items[{i}]: {exc}") from None

    def deduct_many(
        self, items: Sequence[tuple[str, str, int]], now: int, *, checked: bool = False, wait: bool = False
    ) -> Decided:
        """``deduct`` of each (budget, request id, amount), in order, with the same answers.

        Every item is checked before anything changes (a bad one raises ``InvalidInput`` naming
        its index); ``checked``: the caller already passed ``items`` through ``check_items``.
        The new requests of a budget whose slice covers all of them are served together: their
        records, then one update of the budget's counters, so a crash keeps all of them or
        none. Anything else (a slice short of the sum, a request id twice in the batch) is
        decided one request at a time, as ``deduct`` would. With ``wait``, the new requests of
        a budget that a slice on its way could serve are left undecided (None) and the budget
        is named in ``Decided.waiting``: nothing of them changed, ask again once it came.
        Budgets are independent, so deciding some of them later gives the same answers.
        """
        if not checked:
            self.check_items(items)
        request_ids = [request_id for _, request_id, _ in items]
        if len(set(request_ids)) < len(items):
            return Decided([self.deduct(b, r, a, now) for b, r, a in items])
        answers: list[Answer | Forward | None] = [None] * len(items)
        waiting: dict[str, int] = {}
        priors = list(map(self.records.get, request_ids))
        budgets = {budget_id for budget_id, _, _ in items}
        fresh: dict[str, Sequence[int]]  # budget -> indexes of its new requests
        if len(budgets) == 1 and priors.count(None) == len(priors):
            fresh = {budgets.pop(): range(len(items))}  # the usual batch: one budget, all new
        else:
            groups: dict[str, list[int]] = {}
            for i, prior in enumerate(priors):
                budget_id, request_id, amount = items[i]
                if prior is None:
                    groups.setdefault(budget_id, []).append(i)
                else:
                    fingerprint = f"deduct|{budget_id}|{amount}"
                    answers[i] = self._prior_answer(
                        prior, request_id, fingerprint, "request {r} was already applied"
                    )
            fresh = dict(groups)
        for budget_id, indexes in fresh.items():
            amounts = [items[i][2] for i in indexes]
            total = sum(amounts)
            s = self._slices.get(budget_id)
            why = Forward("short", "more than a number can hold") if total > MAX_AMOUNT else None
            why = why or self._why_not_local(s, total, now)
            if why is not None:
                if wait and why.reason in _SLICE_HELPS:
                    waiting[budget_id] = min(total, MAX_AMOUNT)
                    continue
                for i in indexes:
                    answers[i] = self.deduct(*items[i], now)
                continue
            assert s is not None
            self._note_demand(s, total, now)
            c = s.counters
            counters = Counters(c.consumed + total, c.returned, c.reserved, c.released, c.seq + 1)
            # One record and one shared answer per amount (a batch mostly asks one amount).
            shared: dict[int, tuple[str, Answer]] = {}
            for amount in set(amounts):
                shared[amount] = (f"deduct|{budget_id}|{amount}", self._ok(amount))
            served: list[tuple[str, Record]] = []
            for i, amount in zip(indexes, amounts, strict=True):
                fingerprint, answer = shared[amount]
                answers[i] = answer
                served.append((request_ids[i], Served("deduct", budget_id, fingerprint, answer, now)))
            self.log.write_many(served, counters.seq)  # the records first, then their counters
            self._set(s, counters)
            self.records.put_many(served)
        return Decided(answers, waiting)

    def return_(
        self, budget_id: str, request_id: str, deduction_id: str, amount: int, now: int
    ) -> Answer | Forward:
        """Refund a deduction this agent served; one it did not serve is the center's to refund."""
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_request_id(deduction_id, "deduction_id")
        check_amount(amount)
        if request_id == deduction_id:
            return Answer("CONFLICT", message="a return needs its own request_id, not the deduction's")
        fingerprint = return_fingerprint(budget_id, amount, deduction_id)
        prior = self._prior(request_id, fingerprint, "return {r} was already applied")
        if prior is not None:
            return prior
        d = self.records.get(deduction_id)
        if isinstance(d, Forwarded) or d is None:
            return self._forward(request_id, fingerprint, Forward("remote", "deduction not served here"), now)
        deducted = _deducted(d, budget_id)
        if deducted is None:
            return Answer(
                "UNKNOWN_REQUEST",
                message=f"no deduction {deduction_id} on budget {budget_id} (never made, or older than retention)",
            )
        left = deducted - d.returned
        if amount > left:
            return Answer(
                "EXCEEDS_DEDUCTED",
                message=f"deduction {deduction_id} has only {left} left to refund",
                refundable=left,
            )
        s = self._slice(budget_id, now)
        c = s.counters
        d.returned += amount
        answer = Answer("OK", amount, refundable=left - amount)
        record = Served("return", budget_id, fingerprint, answer, now)
        counters = replace(c, returned=c.returned + amount, seq=c.seq + 1)
        self._commit(s, counters, (deduction_id, d), (request_id, record))
        self.records.put(request_id, record)
        return answer

    def reserve(
        self, budget_id: str, request_id: str, amount: int, ttl_ms: int, now: int
    ) -> Answer | Forward:
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_amount(amount)
        ttl = resolve_ttl(ttl_ms, self.config.reservation_ttl_ms, self.config.reservation_max_ttl_ms)
        fingerprint = reserve_fingerprint(budget_id, amount, ttl_ms)
        prior = self._prior(request_id, fingerprint, "reservation {r} was already made")
        if prior is not None:
            return prior
        s = self._active(budget_id, amount, now)
        refusal = self._why_not_local(s, amount, now)
        if refusal is not None:
            return self._forward(request_id, fingerprint, refusal, now)
        assert s is not None
        c = s.counters
        expires_at_ms = now + ttl + self.config.unix_offset_ms
        r = Reservation(budget_id, fingerprint, amount, now + ttl, expires_at_ms, now)
        self._commit(s, replace(c, reserved=c.reserved + amount, seq=c.seq + 1), (request_id, r))
        self.records.put(request_id, r)
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
                    "EXISTS", amount, released=r.released, message=f"reservation {rid} was already confirmed"
                )
            return Answer("CONFLICT", message=f"reservation {rid} was already confirmed for {r.confirmed}")
        if r.state == "cancelled":
            return Answer("CANCELLED", message=f"reservation {rid} was cancelled")
        if r.state == "expired":
            return Answer("EXPIRED", message=f"reservation {rid} expired; its amount was released")
        if amount > r.amount:
            return Answer(
                "EXCEEDS_DEDUCTED", message=f"reservation {rid} holds only {r.amount}; nothing was confirmed"
            )
        s = self._slice(budget_id, now)
        c = s.counters
        r.state, r.confirmed, r.released = "confirmed", amount, r.amount - amount
        counters = replace(c, consumed=c.consumed + amount, reserved=c.reserved - r.amount, seq=c.seq + 1)
        self._commit(s, counters, (reservation_id, r))
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
            return Answer("EXISTS", released=r.amount, message=f"reservation {rid} was already cancelled")
        if r.state == "confirmed":
            return Answer("CONFIRMED", message=f"reservation {rid} was confirmed")
        if r.state == "expired":
            return Answer("EXPIRED", message=f"reservation {rid} expired; its amount was released")
        if now >= r.expires_at:
            self._end(reservation_id, r, "expired")
            return Answer("EXPIRED", message=f"reservation {rid} expired; its amount was released")
        self._end(reservation_id, r, "cancelled")
        return Answer("OK", released=r.amount)

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

    def expire(self, now: int) -> int:
        """Release reservations past their TTL and forget records past retention; return how many expired."""
        due = [(rid, r) for rid, r in self._held.items() if now >= r.expires_at]
        for rid, r in due:
            self._end(rid, r, "expired")
        self.records.prune(now)
        return len(due)

    # ---- the center's side ------------------------------------------------------------------

    def adopt(self, holding: Holding, sent_at: int) -> bool:
        """Take the center's view of a holding; ``sent_at``: when the answered request was sent.

        An older version than the one held changes nothing. The lease is measured from the
        agent's send time, which is before the center set it, so the agent stops spending
        first. Returns False if the holding was ignored.
        """
        check_budget_id(holding.budget_id)
        s = self._slice(holding.budget_id, sent_at)
        current = s.holding
        if current is not None and holding.version < current.version:
            return False
        if holding.applied.seq > s.counters.seq:
            # The center applied usage these counters do not have (a journal that lost its last
            # pages, or a new one): continue from what it applied, or the formula would let the
            # agent spend the difference twice.
            held = sum(r.amount for r in self._held.values() if r.budget_id == holding.budget_id)
            log.warning(
                "budget %s: the center applied usage seq %d, the journal has %d; continuing from it",
                holding.budget_id,
                holding.applied.seq,
                s.counters.seq,
            )
            a = holding.applied
            self._set(s, replace(a, reserved=held, seq=a.seq + (1 if held != a.reserved else 0)))
        s.holding = holding
        if holding.lease_ms > 0:
            # Answers can arrive out of order; the center's lease only moves forward.
            s.lease_deadline = max(s.lease_deadline, sent_at + holding.lease_ms)
        return True

    def release(self, budget_id: str, amount: int) -> int:
        """Give back up to ``amount`` of the unreserved available balance; return what was given."""
        s = self._slices.get(budget_id)
        if s is None or amount <= 0:
            return 0
        give = min(amount, max(0, s.available()))
        if give > 0:
            c = s.counters
            self._set(s, replace(c, released=c.released + give, seq=c.seq + 1))
        return give

    def answer_reclaim(self, budget_id: str, amount: int) -> tuple[int, Counters]:
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
        s = self._slice(budget_id, now)
        if amount > 0 and s.last_grant == 0 and s.holding is None:
            s.note_demand(amount, now, self._half_life_s)

    # ---- reading ----------------------------------------------------------------------------

    def usage(self, budget_id: str) -> Counters:
        s = self._slices.get(budget_id)
        return Counters() if s is None else s.counters

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
        return s is not None and refill.wants_refill(s, now, self.config.rules)

    def release_due(self, budget_id: str, now: int) -> int:
        s = self._slices.get(budget_id)
        return 0 if s is None else refill.release_due(s, now, self.config.rules)

    def observed_rate(self, budget_id: str, now: int) -> int:
        s = self._slices.get(budget_id)
        return 0 if s is None else refill.observed_rate(s, now, self.config.rules)

    def wait_reason(self, budget_id: str, amount: int, now: int) -> str | None:
        """Why a request for ``amount`` would be forwarded now, if a slice arriving could change it.

        ``unknown``, ``no_holding`` or ``short``; None when the slice covers it, or when it is
        forwarded for a reason a grant does not change (central mode, a paused budget, ...).
        Changes nothing: the I/O edge asks it to decide whether to wait for a slice in flight.
        Bad input raises InvalidInput, as ``deduct`` would, so that it is refused without a wait.
        """
        check_budget_id(budget_id)
        check_amount(amount)
        why = self._why_not_local(self._slices.get(budget_id), amount, now)
        return why.reason if why is not None and why.reason in _SLICE_HELPS else None

    def unix_ms(self, now: int) -> int:
        return now + self.config.unix_offset_ms

    # ---- internals --------------------------------------------------------------------------

    def _prior(self, request_id: str, fingerprint: str, applied: str) -> Answer | Forward | None:
        """The answer to a request id seen before; None for a new one."""
        r = self.records.get(request_id)
        return None if r is None else self._prior_answer(r, request_id, fingerprint, applied)

    @staticmethod
    def _prior_answer(r: Record, request_id: str, fingerprint: str, applied: str) -> Answer | Forward:
        """The answer to a request whose id has the record ``r``."""
        if not same_request(r.fingerprint, fingerprint):
            return Answer(
                "CONFLICT", message=f"request_id {request_id} was already used for a different request"
            )
        message = applied.format(r=request_id)
        if isinstance(r, Served):
            return replace(r.answer, code="EXISTS", message=message)
        if isinstance(r, Reservation):
            return Answer("EXISTS", r.amount, message, expires_at_ms=r.expires_at_ms)
        if r.answer is not None:
            return replace(r.answer, code="EXISTS", message=r.answer.message or message)
        return Forward("retry", "forwarded before: only the center knows whether it took effect")

    def _active(self, budget_id: str, amount: int, now: int) -> BudgetSlice | None:
        """The budget's slice, with this request counted as demand."""
        s = self._slices.get(budget_id)
        if s is not None:
            self._note_demand(s, amount, now)
        return s

    def _note_demand(self, s: BudgetSlice, amount: int, now: int) -> None:
        s.note_demand(amount, now, self._half_life_s)
        s.active_at = now

    def _ok(self, amount: int) -> Answer:
        """``Answer("OK", amount)``, shared: answers are immutable and most amounts repeat."""
        answer = self._ok_answers.get(amount)
        if answer is None:
            answer = Answer("OK", amount)
            if len(self._ok_answers) < _OK_ANSWERS_KEPT:
                self._ok_answers[amount] = answer
        return answer

    @staticmethod
    def _why_not_local(s: BudgetSlice | None, amount: int, now: int) -> Forward | None:
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

    def _forward(self, request_id: str, fingerprint: str, why: Forward, now: int) -> Forward:
        if self.records.get(request_id) is None:
            # The id is bound to the center for good, also across a restart: a retry served
            # from the slice could apply a second time what the center already applied.
            record = Forwarded(fingerprint, now)
            self.log.write(request_id, record, 0)
            self.records.put(request_id, record)
        return why

    def _reservation(self, budget_id: str, reservation_id: str) -> Reservation | Answer | Forward:
        """This agent's reservation, the answer for an id it knows as something else, or Forward."""
        r: Record | None = self.records.get(reservation_id)
        if isinstance(r, Reservation) and r.budget_id == budget_id:
            return r
        if isinstance(r, Served | Reservation):
            # Served here, so the center does not know it either: it is not a reservation of this budget.
            return Answer(
                "UNKNOWN_REQUEST",
                message=f"no reservation {reservation_id} on budget {budget_id} (never made, or older than retention)",
            )
        return Forward("remote", "reservation not made here")

    def _end(self, reservation_id: str, r: Reservation, state: str) -> None:
        s = self._slice(r.budget_id, r.at)
        c = s.counters
        r.state = state
        if state != "confirmed":
            r.released = r.amount
        self._commit(s, replace(c, reserved=c.reserved - r.amount, seq=c.seq + 1), (reservation_id, r))
        self._held.pop(reservation_id, None)

    def _slice(self, budget_id: str, now: int) -> BudgetSlice:
        s = self._slices.get(budget_id)
        if s is None:
            s = self._slices[budget_id] = BudgetSlice(budget_id, active_at=now)
            s.rate = DecayingRate.starting(now / 1000)
        return s

    def _commit(self, s: BudgetSlice, counters: Counters, *changed: tuple[str, Record]) -> None:
        """Write the changed records, then the counters that count them (see the module docstring)."""
        for request_id, record in changed:
            self.log.write(request_id, record, counters.seq)
        self._set(s, counters)

    def _set(self, s: BudgetSlice, counters: Counters) -> None:
        # Journal first: if it cannot take the write, nothing changed here either.
        self.journal.write(s.budget_id, counters)
        s.counters = counters


def _deducted(d: Served | Reservation, budget_id: str) -> int | None:
    """What a record deducted on ``budget_id``, if it is a refundable deduction of it."""
    if d.budget_id != budget_id:
        return None
    if isinstance(d, Served):
        return d.answer.amount if d.kind == "deduct" else None
    return d.confirmed if d.state == "confirmed" else None
