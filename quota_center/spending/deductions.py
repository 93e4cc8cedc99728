"""Deduct and Return at the center: served by sub-buckets, exactly once per request id.

A request id is global across budgets. Its first use binds it to a fingerprint of
the request (kind, budget, amount, refunded deduction) under its own Redis key; a
later use with another fingerprint is a CONFLICT, whichever budget it names. The
effect itself is recorded next to the sub-bucket that served it, atomically with
the balance change, so a retry or a concurrent duplicate finds it and gets the
original answer. A refusal has no effect and is not remembered: the same request
retried after a top-up may succeed.

Every effect is also queued for the write-behind spend log (quota_center/recovery/writebehind.py),
which settles lost sub-buckets and answers retries after a Redis loss (quota_center/recovery/recall.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from quota_center.agents.sessions import ServedElsewhere
from quota_center.buckets.store import BucketStore, Outcome
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.budgets.sellout import SellOut
from quota_center.errors import BucketLost, LockBusy, StaleGeneration, Unavailable
from quota_center.holders import sub_holder
from quota_center.ledger.spend_log import SpendEntry
from quota_center.metrics import DEDUCT_WAITS, SOLD_OUT_REFUSALS
from quota_center.recovery.rebuild import Recovery
from quota_center.recovery.recall import Prior, Recall
from quota_center.recovery.writebehind import SpendLog, Unlogged, deduct_entry, refund_entry
from quota_center.refill.cover import Replenisher
from quota_center.spending.placement import sub_bucket_for
from quota_rules import messages
from quota_rules.fingerprints import deduct_fingerprint, return_fingerprint
from quota_rules.limits import check_amount, check_budget_id, check_request_id

# A deduction is retried after a refill, a rebuild or a concurrent thief; each round
# either serves it, refuses it honestly or makes progress for someone else.
MAX_ATTEMPTS = 32

_REFUSALS = {
    "PAUSED": ("BUDGET_PAUSED", messages.PAUSED),
    "CLOSED": ("BUDGET_CLOSED", messages.CLOSED),
    "CONFLICT": ("CONFLICT", messages.CONFLICT),
    "UNKNOWN": ("UNKNOWN_REQUEST", messages.UNKNOWN_DEDUCTION),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """Outcome of a spending call; ``code`` is a ResultCode name without its prefix."""

    code: str
    amount: int = 0
    message: str = ""
    refundable: int = 0
    # A refusal's holders that did not answer a reclaim, with what they hold (DeductResponse.unreachable).
    unreachable: tuple[tuple[str, int], ...] = ()


# Items of one DeductBatch that go through ``deduct`` one by one, at once.
BATCH_CONCURRENCY = 32


def check_deduct(budget_id: str, request_id: str, amount: int) -> None:
    """Raise InvalidInput unless the fields of a deduction are well formed."""
    check_budget_id(budget_id)
    check_request_id(request_id)
    check_amount(amount)


class Spending:
    def __init__(
        self,
        registry: Registry,
        buckets: BucketStore,
        replenisher: Replenisher,
        recovery: Recovery,
        log: SpendLog | None = None,
        recall: Recall | None = None,
        vouch: Vouch | None = None,
        sellout: SellOut | None = None,
    ) -> None:
        self.registry = registry
        # The budgets' sold-out marks: read after a short sub-bucket, told of returns.
        self.sellout = sellout
        self.buckets = buckets
        self.replenisher = replenisher
        self.recovery = recovery
        self.log: SpendLog = log or Unlogged()
        self.recall = recall
        # Asks the agents holding a budget whether one served a request id from its slice.
        self.vouch = vouch
        # Marks a budget the center serves active, without waiting (budgets/activity.py): the filler
        # refills it.
        self.touch: Callable[[str], object] | None = None

    async def deduct(
        self,
        budget_id: str,
        request_id: str,
        amount: int,
        *,
        retry: bool = False,
        answer_by: float | None = None,
    ) -> Answer:
        """Deduct ``amount`` once per ``request_id``. A ``retry`` (quota_rules/retries.py) the
        center has no claim of may have been served from an agent's slice: the agents holding
        the budget are asked first (UNAVAILABLE when one that might have cannot be asked)."""
        check_deduct(budget_id, request_id, amount)
        meta = await self.registry.get(budget_id)
        refusal = self._window(meta)
        if refusal is not None:
            return refusal
        if self.touch is not None:
            self.touch(budget_id)
        if retry and self.vouch is not None and not await self.buckets.claimed(request_id):
            served = await self.vouch(budget_id, request_id)
            if served is not None:
                return _vouched(served, budget_id, request_id, amount)
        recalled = 0  # the generation whose spend log was consulted (before claiming: see recall.py)
        claimed = False
        checked = False  # the spend log was consulted for an id older than the request window
        for _ in range(MAX_ATTEMPTS):
            recall = self._recall(meta, recalled)
            if recall is not None:
                recalled = meta.gen
                prior = await recall.deduction(meta, request_id, amount)
                if prior is not None:
                    return await self._recalled(prior)
            fingerprint = deduct_fingerprint(budget_id, amount)
            combined = not claimed and self.buckets.one_server
            if not claimed and not combined:
                prior = await self._older(request_id, partial(self._past_deduction, meta, request_id, amount))
                if prior is not None:
                    return _answer(prior)
                conflict = await self._claim(request_id, fingerprint)
                if conflict is not None:
                    return conflict
                claimed = True
            index = sub_bucket_for(request_id, meta.sub_buckets)
            try:
                if combined:
                    # One round trip: the claim and the deduction in one script (one server).
                    work = self.buckets.claim_and_deduct(
                        request_id, fingerprint, budget_id, index, amount, meta.gen, checked=checked
                    )
                else:
                    work = self.buckets.deduct(budget_id, index, request_id, amount, meta.gen)
                r = await self.log.call(work, deduct_entry(budget_id, index, request_id))
                if r.status == "UNMARKED" and self.buckets.seen is not None:
                    await self.buckets.seen.mark(request_id)  # then the filters are asked again
                    continue
                if r.status == "RECALL":
                    # The claim is gone and the filters may have seen the id: older than the
                    # request window, the spend log knows what it did (docs/center.md#request-ids).
                    prior = await self._past_deduction(meta, request_id, amount)
                    if prior is not None:
                        return _answer(prior)
                    checked = True
                    continue
                if r.pooled:
                    index = 0  # the pool answered, in the same call (one server)
                if r.status != "UNCLAIMED":
                    claimed = True
                    _fence(r, budget_id, index, meta)
                if r.status == "POOLED":
                    # The end game serves new deductions from the pool, sub-bucket 0 (its sub-bucket
                    # has no record of the id, and never will: docs/center.md#end-game).
                    index = 0
                    pooled = self.buckets.deduct(budget_id, 0, request_id, amount, meta.gen)
                    r = await self.log.call(pooled, deduct_entry(budget_id, 0, request_id))
                    _fence(r, budget_id, 0, meta)
                settled = self._settled(r, budget_id, request_id, amount)
                if settled is not None:
                    return settled
                if r.status == "LOST":
                    raise BucketLost(budget_id, sub_holder(index))
                # SHORT: this sub-bucket cannot cover it; a sold-out budget refuses at once, else
                # refill it or refuse honestly.
                if self.sellout is not None and (await self.sellout.read(budget_id)).sold_out:
                    SOLD_OUT_REFUSALS.inc()
                    return Answer("INSUFFICIENT", 0, messages.SOLD_OUT.format(b=budget_id, n=amount))
                DEDUCT_WAITS.inc()
                if not await self.replenisher.cover(meta, index, amount, pooled=True, wait_until=answer_by):
                    unanswered = tuple(sorted(self.replenisher.unanswered(budget_id).items()))
                    return Answer(
                        "INSUFFICIENT",
                        0,
                        insufficient(meta, amount, self.replenisher),
                        unreachable=unanswered,
                    )
            except BucketLost:
                await self.recovery.rebuild(budget_id)
                meta = await self.registry.get(budget_id)
            except StaleGeneration:
                self.registry.forget(budget_id)
                meta = await self.registry.get(budget_id)
        raise Unavailable(f"budget {budget_id}: deduction not settled after {MAX_ATTEMPTS} attempts")

    async def deduct_many(
        self, items: Sequence[tuple[str, str, int]], answer_by: float | None = None, *, retry: bool = False
    ) -> list[Answer]:
        """``deduct`` of each (budget, request id, amount), answered in order (items checked by the caller).

        On one Redis server the items go to the sub-buckets in one pipeline of deduct.lua calls,
        each claiming its id and deducting as ``deduct`` would, logged as one operation. An item
        that pipeline does not settle (a sub-bucket short of it, a budget rebuilt or to be
        recalled from the spend log, a failed call) goes through ``deduct`` on its own, which
        refills, merges, rebuilds or refuses. On a Redis Cluster every item goes through ``deduct``.

        Those run ``BATCH_CONCURRENCY`` at a time, so a batch of 10,000 holds as many Redis
        connections at most. An item not started by ``answer_by`` (the event loop's clock: the
        caller's deadline less a margin) is not started at all and answered UNSETTLED, so the
        batch answers in time with a result for every item.

        A ``retry`` batch goes item by item through ``deduct(retry=True)``; an item whose retry
        cannot be checked with the agents now is answered UNSETTLED (retry it later).
        """
        answers: list[Answer | None] = [None] * len(items)
        if self.buckets.one_server and len(items) > 1 and not retry:
            batch: list[tuple[int, BudgetMeta, int, str]] = []  # item, its budget, sub-bucket, fingerprint
            for i, (budget_id, request_id, amount) in enumerate(items):
                meta = await self.registry.get(budget_id)
                refusal = self._window(meta)
                if refusal is not None:
                    answers[i] = refusal
                    continue
                if self.touch is not None:
                    self.touch(budget_id)
                if self._recall(meta, 0) is None:  # else deduct consults the spend log first
                    index = sub_bucket_for(request_id, meta.sub_buckets)
                    batch.append((i, meta, index, deduct_fingerprint(budget_id, amount)))
            calls = [
                (items[i][1], fp, items[i][0], index, items[i][2], meta.gen) for i, meta, index, fp in batch
            ]
            entries = [deduct_entry(items[i][0], index, items[i][1]) for i, _, index, _ in batch]
            outcomes = await self.log.call_many(self.buckets.claim_and_deduct_many(calls), entries)
            for (i, _, _, _), r in zip(batch, outcomes, strict=True):
                if r is not None:
                    answers[i] = self._settled(r, *items[i])
        # The rest one by one, concurrently; the items of one request id in their order, so that
        # the first is the one applied and a repeat answers EXISTS, as in a batch sent one by one.
        rest: dict[str, list[int]] = {}
        for i, answer in enumerate(answers):
            if answer is None:
                rest.setdefault(items[i][1], []).append(i)

        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def in_order(indexes: list[int]) -> None:
            for i in indexes:
                async with slots:
                    unsettled = Answer("UNSETTLED", message=messages.UNSETTLED.format(r=items[i][1]))
                    if answer_by is not None and loop.time() >= answer_by:
                        answers[i] = unsettled
                    elif not retry:
                        try:
                            answers[i] = await self.deduct(*items[i], answer_by=answer_by)
                        except LockBusy:  # its sub-bucket was short and the refill not begun in time
                            answers[i] = unsettled
                    else:
                        try:
                            answers[i] = await self.deduct(*items[i], retry=True)
                        except Unavailable as exc:
                            answers[i] = Answer("UNSETTLED", message=str(exc))

        await asyncio.gather(*(in_order(indexes) for indexes in rest.values()))
        return [answer for answer in answers if answer is not None]

    def _settled(self, r: Outcome, budget_id: str, request_id: str, amount: int) -> Answer | None:
        """The answer to a deduction the script settled; None when ``deduct`` must go on with it."""
        if r.status == "UNCLAIMED":
            return _conflict(request_id)
        if r.status == "OK":
            return Answer("OK", amount)
        if r.status == "EXISTS":
            return Answer("EXISTS", r.value, messages.APPLIED.format(r=request_id))
        if r.status in _REFUSALS:
            return self._refusal(r.status, budget_id, request_id)
        return None  # SHORT, STALE, LOST

    async def refund(self, budget_id: str, request_id: str, deduction_id: str, amount: int) -> Answer:
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_request_id(deduction_id, "deduction_id")
        check_amount(amount)
        if request_id == deduction_id:
            return Answer("CONFLICT", 0, messages.RETURN_OWN_ID)
        meta = await self.registry.get(budget_id)
        index = sub_bucket_for(deduction_id, meta.sub_buckets)
        recalled = 0
        claimed = False
        restore: tuple[int, int] | None = None  # the deduction's record, if made before a loss
        for _ in range(4):
            recall = self._recall(meta, recalled)
            if recall is not None:
                recalled, restore = meta.gen, None
                prior = await recall.refund(meta, request_id, deduction_id, amount)
                if prior is not None:
                    return await self._recalled(prior)
            if not claimed:
                fingerprint = return_fingerprint(budget_id, amount, deduction_id)
                prior = await self._older(
                    request_id, partial(self._past_return, meta, request_id, deduction_id, amount)
                )
                if prior is not None:
                    return _answer(prior)
                conflict = await self._claim(request_id, fingerprint)
                if conflict is not None:
                    return conflict
                claimed = True
            r = await self.log.call(
                self.buckets.refund(budget_id, index, deduction_id, request_id, amount, meta.gen, restore),
                refund_entry(budget_id, index, request_id, deduction_id),
            )
            if r.status == "POOLED" and index != 0:
                index = 0  # not here: a deduction the end game's pool served (docs/center.md#end-game)
                continue
            if r.status == "OK":
                if self.sellout is not None:
                    await self.sellout.changed(budget_id)
                return Answer("OK", amount, refundable=r.extra)
            if r.status == "EXISTS":
                return Answer("EXISTS", r.value, messages.RETURN_APPLIED.format(r=request_id), r.extra)
            if r.status == "EXCEEDS":
                return Answer(
                    "EXCEEDS_DEDUCTED",
                    0,
                    messages.EXCEEDS_REFUNDABLE.format(d=deduction_id, n=r.extra),
                    r.extra,
                )
            if r.status == "UNKNOWN" and restore is None and self.recall is not None:
                # Made before a Redis loss, or longer ago than the request window? Recreate its
                # record from the spend log, at the sub-bucket that served it, then refund.
                found = await self.recall.restore(meta, deduction_id)
                if found is not None:
                    restore = (found.amount, found.returned)
                    index = index if found.index is None else found.index
                    continue
            if r.status == "STALE" and r.gen > meta.gen:
                self.registry.forget(budget_id)
            elif r.status in ("LOST", "STALE"):
                await self.recovery.rebuild(budget_id)
            else:
                return self._refusal(r.status, budget_id, request_id, deduction_id)
            meta = await self.registry.get(budget_id)
        raise Unavailable(f"budget {budget_id}: sub-bucket {index} could not be rebuilt")

    def _recall(self, meta: BudgetMeta, recalled: int) -> Recall | None:
        """The spend log to consult before serving: the budget was rebuilt within retention and
        this call has not consulted it in this generation yet."""
        if self.recall is None or recalled == meta.gen or not self.recall.active(meta):
            return None
        return self.recall

    async def _recalled(self, prior: Prior) -> Answer:
        """The answer the spend log remembers; the id is bound again to what it did then."""
        await self.buckets.bind(prior.entry.request_id, _fingerprint(prior.entry))
        return Answer(prior.code, prior.amount, prior.message, prior.refundable)

    async def _claim(self, request_id: str, fingerprint: str) -> Answer | None:
        previous = await self.buckets.claim(request_id, fingerprint)
        if previous is None or previous == fingerprint:
            return None
        return _conflict(request_id)

    async def _older(self, request_id: str, look: Callable[[], Awaitable[Prior | None]]) -> Prior | None:
        """What an id did longer ago than the request window, by the spend log (``look``), if its
        claim is gone and the seen filters may hold it; None: go on and claim it.

        Nothing is bound on the way, so every concurrent copy of an old request looks it up and
        gets the same answer (a claim bound here would send the next copy past the filters to a
        sub-bucket that no longer has its record). The id is added to today's filter in the same
        step, before it is claimed and served: a crash after serving cannot leave it out.
        (Deductions on one Redis server do this in deduct.lua, RECALL, and add what they serve.)"""
        seen = self.buckets.seen
        if seen is None or self.recall is None or not await seen.check(request_id, add=True):
            return None
        if await self.buckets.claimed(request_id):
            return None  # within the window: the claim and the record settle it
        return await look()

    async def _past_deduction(self, meta: BudgetMeta, request_id: str, amount: int) -> Prior | None:
        return None if self.recall is None else await self.recall.deduction(meta, request_id, amount)

    async def _past_return(
        self, meta: BudgetMeta, request_id: str, deduction_id: str, amount: int
    ) -> Prior | None:
        return (
            None if self.recall is None else await self.recall.refund(meta, request_id, deduction_id, amount)
        )

    @staticmethod
    def _window(meta: BudgetMeta) -> Answer | None:
        reason = meta.outside_window(datetime.now(UTC))
        return None if reason is None else Answer("BUDGET_OUTSIDE_WINDOW", 0, reason)

    @staticmethod
    def _refusal(status: str, budget_id: str, request_id: str, deduction_id: str = "") -> Answer:
        code, text = _REFUSALS[status]
        return Answer(code, 0, text.format(b=budget_id, r=request_id, d=deduction_id))


class Vouch(Protocol):
    async def __call__(self, budget_id: str, request_id: str) -> ServedElsewhere | None: ...


def _vouched(served: ServedElsewhere, budget_id: str, request_id: str, amount: int) -> Answer:
    """The answer to a retry an agent served first: the original one, as EXISTS, or CONFLICT."""
    if (served.kind, served.budget_id, served.amount) == ("deduct", budget_id, amount) and served.code in (
        "OK",
        "EXISTS",
    ):
        return Answer(
            "EXISTS", amount, f"{messages.APPLIED.format(r=request_id)} (by agent {served.agent_id})"
        )
    return _conflict(request_id)


def _answer(prior: Prior) -> Answer:
    """The answer the spend log remembers for an id older than the request window."""
    return Answer(prior.code, prior.amount, prior.message, prior.refundable)


def _conflict(request_id: str) -> Answer:
    return Answer("CONFLICT", 0, messages.CONFLICT.format(r=request_id))


def _fingerprint(entry: SpendEntry) -> str:
    if entry.kind == "return" and entry.deduction_id is not None:
        return return_fingerprint(entry.budget_id, entry.amount, entry.deduction_id)
    return deduct_fingerprint(entry.budget_id, entry.amount)


def insufficient(meta: BudgetMeta, amount: int, replenisher: Replenisher) -> str:
    """The refusal message; it names what holders that did not answer a reclaim hold, and where."""
    budget_id = meta.budget_id
    if meta.policy.strategy == "static":
        return f"budget {budget_id} is static: this request's share has less than {amount} left"
    message = messages.INSUFFICIENT.format(b=budget_id, n=amount)
    unanswered = replenisher.unanswered(budget_id)
    if unanswered:
        held = ", ".join(f"{h} holds {n}" for h, n in sorted(unanswered.items()))
        message += f" where the center could reach it; not answering: {held}"
    return message


def _fence(r: Outcome, budget_id: str, index: int, meta: BudgetMeta) -> None:
    """A sub-bucket in another generation than ours: newer, reload the budget; older, it survived a
    rebuild that has not reset it yet, so rebuild (which resets it)."""
    if r.status == "STALE":
        if r.gen > meta.gen:
            raise StaleGeneration(budget_id)
        raise BucketLost(budget_id, sub_holder(index))
