"""Deductions and returns: served from the slice in one synchronous call, or forwarded (pure).

Bad input raises ``InvalidInput`` before anything changes, with the center's checks and messages;
answers and their messages are the center's (``quota_rules.messages``), so a caller cannot tell
who answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from quota_rules import messages
from quota_rules.fingerprints import deduct_fingerprint, return_fingerprint
from quota_rules.limits import MAX_AMOUNT, InvalidInput, check_amount, check_budget_id, check_request_id
from quota_rules.usage import Usage
from region_agent.core.books import Books
from region_agent.core.records import Answer, Forwarded, Record, Reservation, Served, answer_again
from region_agent.core.serving import SLICE_HELPS, Forward, sold_out, why_not_local

_OK_ANSWERS_KEPT = 4096  # distinct amounts whose OK answer is shared


@dataclass(frozen=True, slots=True)
class Decided:
    """What ``deduct_many`` decided: an answer per item, None for the items of ``waiting`` budgets."""

    answers: list[Answer | Forward | None]
    waiting: dict[str, int] = field(default_factory=dict)  # budget -> units its undecided items ask


class Spending:
    def __init__(self, books: Books) -> None:
        self._books = books
        # What every deduction touches, held here: the hot path saves a lookup on each.
        self._slices = books.slices
        self._records = books.records
        self._log = books.log
        self._set = books.set
        self._note_demand = books.note_demand
        self._ok_answers: dict[int, Answer] = {}

    def deduct(
        self,
        budget_id: str,
        request_id: str,
        amount: int,
        now: int,
        *,
        wait: bool = False,
        retry: bool = False,
    ) -> Answer | Forward:
        """Serve a deduction from the slice, or say why the center must decide it.

        With ``wait``, a request that a slice on its way could serve (``serving.SLICE_HELPS``)
        comes back as a ``Forward`` with ``bound=False`` and nothing changed, so that the caller
        can wait for the slice and ask again; otherwise a ``Forward`` binds the id to the center.
        """
        s = self._slices.get(budget_id)
        if s is None:
            check_budget_id(budget_id)  # a budget held here was checked when first met
        check_request_id(request_id)
        check_amount(amount)
        fingerprint = deduct_fingerprint(budget_id, amount)
        prior = self._records.get(request_id)
        if prior is not None:
            return answer_again(prior, request_id, fingerprint, messages.APPLIED)
        if retry:
            # A retry this agent never saw may have been served elsewhere: the center decides
            # (quota_rules/retries.py).
            return self._books.forward(request_id, fingerprint, Forward("retry", "a retry unknown here"), now)
        refusal = why_not_local(s, amount, now)
        if refusal is not None:
            if sold_out(s, refusal):
                return Answer("INSUFFICIENT", message=messages.SOLD_OUT_HERE.format(b=budget_id, n=amount))
            if wait and refusal.reason in SLICE_HELPS:
                return replace(refusal, bound=False)
            if s is not None:
                self._note_demand(s, amount, now)
            return self._books.forward(request_id, fingerprint, refusal, now)
        assert s is not None
        self._note_demand(s, amount, now)
        c = s.counters
        counters = Usage(c.seq + 1, c.consumed + amount, c.returned, c.reserved, c.released)
        answer = self._ok(amount)
        record = Served("deduct", budget_id, fingerprint, answer, now)
        self._log.write(request_id, record, counters.seq)  # the record first, then its counters
        self._set(s, counters)
        self._records.put(request_id, record)
        return answer

    def served(self, request_id: str) -> Served | None:
        """What this agent served from its slice under ``request_id``, if it did."""
        record = self._records.get(request_id)
        return record if isinstance(record, Served) else None

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
        priors = list(map(self._records.get, request_ids))
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
                    fingerprint = deduct_fingerprint(budget_id, amount)
                    answers[i] = answer_again(prior, request_id, fingerprint, messages.APPLIED)
            fresh = dict(groups)
        for budget_id, indexes in fresh.items():
            amounts = [items[i][2] for i in indexes]
            total = sum(amounts)
            s = self._slices.get(budget_id)
            why = Forward("short", "more than a number can hold") if total > MAX_AMOUNT else None
            why = why or why_not_local(s, total, now)
            if why is not None:
                if wait and why.reason in SLICE_HELPS and not sold_out(s, why):
                    waiting[budget_id] = min(total, MAX_AMOUNT)
                    continue
                for i in indexes:
                    answers[i] = self.deduct(*items[i], now)
                continue
            assert s is not None
            self._note_demand(s, total, now)
            c = s.counters
            counters = Usage(c.seq + 1, c.consumed + total, c.returned, c.reserved, c.released)
            # One record and one shared answer per amount (a batch mostly asks one amount).
            shared: dict[int, tuple[str, Answer]] = {}
            for amount in set(amounts):
                shared[amount] = (deduct_fingerprint(budget_id, amount), self._ok(amount))
            served: list[tuple[str, Record]] = []
            for i, amount in zip(indexes, amounts, strict=True):
                fingerprint, answer = shared[amount]
                answers[i] = answer
                served.append((request_ids[i], Served("deduct", budget_id, fingerprint, answer, now)))
            self._log.write_many(served, counters.seq)  # the records first, then their counters
            self._set(s, counters)
            self._records.put_many(served)
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
            return Answer("CONFLICT", message=messages.RETURN_OWN_ID)
        fingerprint = return_fingerprint(budget_id, amount, deduction_id)
        prior = self._books.prior(request_id, fingerprint, messages.RETURN_APPLIED)
        if prior is not None:
            return prior
        d = self._records.get(deduction_id)
        if isinstance(d, Forwarded) or d is None:
            why = Forward("remote", "deduction not served here")
            return self._books.forward(request_id, fingerprint, why, now)
        deducted = _deducted(d, budget_id)
        if deducted is None:
            return Answer(
                "UNKNOWN_REQUEST", message=messages.UNKNOWN_DEDUCTION.format(d=deduction_id, b=budget_id)
            )
        left = deducted - d.returned
        if amount > left:
            return Answer(
                "EXCEEDS_DEDUCTED",
                message=messages.EXCEEDS_REFUNDABLE.format(d=deduction_id, n=left),
                refundable=left,
            )
        s = self._books.slice(budget_id, now)
        c = s.counters
        d.returned += amount
        answer = Answer("OK", amount, refundable=left - amount)
        record = Served("return", budget_id, fingerprint, answer, now)
        counters = replace(c, returned=c.returned + amount, seq=c.seq + 1)
        self._books.commit(s, counters, (deduction_id, d), (request_id, record))
        self._records.put(request_id, record)
        return answer

    def _ok(self, amount: int) -> Answer:
        """``Answer("OK", amount)``, shared: answers are immutable and most amounts repeat."""
        answer = self._ok_answers.get(amount)
        if answer is None:
            answer = Answer("OK", amount)
            if len(self._ok_answers) < _OK_ANSWERS_KEPT:
                self._ok_answers[amount] = answer
        return answer


def _deducted(d: Served | Reservation, budget_id: str) -> int | None:
    """What a record deducted on ``budget_id``, if it is a refundable deduction of it."""
    if d.budget_id != budget_id:
        return None
    if isinstance(d, Served):
        return d.answer.amount if d.kind == "deduct" else None
    return d.confirmed if d.state == "confirmed" else None
