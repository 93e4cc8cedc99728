"""Reserve, Confirm and Cancel at the center (promise 6): reservations end exactly once.

See docs/center.md#reservations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from quota_center.buckets.reservations import ReservationStore
from quota_center.buckets.store import Outcome
from quota_center.budgets.activity import Activity
from quota_center.budgets.registry import BudgetMeta, Registry
from quota_center.budgets.sellout import SellOut
from quota_center.errors import BucketLost, StaleGeneration, Unavailable
from quota_center.holders import sub_holder
from quota_center.ledger.spend_log import SpendEntry
from quota_center.metrics import RESERVATIONS, SOLD_OUT_REFUSALS
from quota_center.recovery.rebuild import Recovery
from quota_center.recovery.recall import Recall
from quota_center.recovery.writebehind import SpendLog, Unlogged, cancel_entry, deduct_entry
from quota_center.refill.cover import Replenisher
from quota_center.spending.placement import sub_bucket_for
from quota_center.transfers.protocol import now_ms
from quota_rules import messages
from quota_rules.fingerprints import reserve_fingerprint
from quota_rules.limits import check_amount, check_budget_id, check_request_id
from quota_rules.ttl import resolve_ttl

log = logging.getLogger(__name__)

# As for a deduction: each round serves it, refuses it honestly or follows a refill or rebuild.
MAX_ATTEMPTS = 32


@dataclass(frozen=True, slots=True)
class ReservationAnswer:
    """Outcome of a reservation call; ``code`` is a ResultCode name without its prefix."""

    code: str
    amount: int = 0
    released: int = 0
    expires_at_ms: int = 0
    message: str = ""


_REFUSALS = {
    "PAUSED": ("BUDGET_PAUSED", messages.PAUSED),
    "CLOSED": ("BUDGET_CLOSED", messages.CLOSED),
    "CONFLICT": ("CONFLICT", messages.CONFLICT),
}


def reserve_answer(r: Outcome, budget_id: str, request_id: str) -> ReservationAnswer | None:
    """The answer to a reserve.lua outcome; None for SHORT, STALE and LOST (the caller acts, retries)."""
    if r.status == "OK":
        return ReservationAnswer("OK", r.value, expires_at_ms=r.extra)
    if r.status == "EXISTS":
        return ReservationAnswer(
            "EXISTS", r.value, expires_at_ms=r.extra, message=messages.RESERVATION_MADE.format(r=request_id)
        )
    if r.status in _REFUSALS:
        code, text = _REFUSALS[r.status]
        return ReservationAnswer(code, message=text.format(b=budget_id, r=request_id))
    return None


def _unknown(budget_id: str, reservation_id: str) -> str:
    return messages.UNKNOWN_RESERVATION.format(r=reservation_id, b=budget_id)


def _dropped(budget_id: str, reservation_id: str) -> str:
    return (
        f"reservation {reservation_id} was lost when budget {budget_id} was rebuilt after a Redis loss;"
        " its amount is counted in doubt"
    )


def confirm_answer(r: Outcome, budget_id: str, reservation_id: str) -> ReservationAnswer | None:
    """The answer to a confirm.lua outcome; None for LOST (the caller rebuilds and retries)."""
    rid = reservation_id
    answers = {
        "OK": lambda: ReservationAnswer("OK", r.value, r.extra),
        "EXISTS": lambda: ReservationAnswer(
            "EXISTS", r.value, r.extra, message=messages.CONFIRMED_ALREADY.format(r=rid)
        ),
        "CONFLICT": lambda: ReservationAnswer(
            "CONFLICT", message=messages.CONFIRMED_FOR.format(r=rid, n=r.value)
        ),
        "CANCELLED": lambda: ReservationAnswer("CANCELLED", message=messages.CANCELLED.format(r=rid)),
        "EXPIRED": lambda: ReservationAnswer("EXPIRED", message=messages.EXPIRED.format(r=rid)),
        "EXCEEDS": lambda: ReservationAnswer(
            "EXCEEDS_DEDUCTED", message=messages.HOLDS_ONLY.format(r=rid, n=r.extra)
        ),
        "UNKNOWN": lambda: ReservationAnswer("UNKNOWN_REQUEST", message=_unknown(budget_id, rid)),
        "DROPPED": lambda: ReservationAnswer("UNKNOWN_REQUEST", message=_dropped(budget_id, rid)),
    }
    make = answers.get(r.status)
    return None if make is None else make()


def cancel_answer(r: Outcome, budget_id: str, reservation_id: str) -> ReservationAnswer | None:
    """The answer to a cancel.lua outcome; None for LOST (the caller rebuilds and retries)."""
    rid = reservation_id
    answers = {
        "OK": lambda: ReservationAnswer("OK", released=r.value),
        "EXISTS": lambda: ReservationAnswer(
            "EXISTS", released=r.value, message=messages.CANCELLED_ALREADY.format(r=rid)
        ),
        "CONFIRMED": lambda: ReservationAnswer("CONFIRMED", message=messages.CONFIRMED.format(r=rid)),
        "EXPIRED": lambda: ReservationAnswer("EXPIRED", message=messages.EXPIRED.format(r=rid)),
        "UNKNOWN": lambda: ReservationAnswer("UNKNOWN_REQUEST", message=_unknown(budget_id, rid)),
        "DROPPED": lambda: ReservationAnswer("UNKNOWN_REQUEST", message=_dropped(budget_id, rid)),
    }
    make = answers.get(r.status)
    return None if make is None else make()


class Reservations:
    def __init__(
        self,
        registry: Registry,
        store: ReservationStore,
        replenisher: Replenisher,
        recovery: Recovery,
        *,
        default_ttl_ms: int,
        max_ttl_ms: int,
        clock: Callable[[], int] = now_ms,
        log: SpendLog | None = None,
        recall: Recall | None = None,
        sellout: SellOut | None = None,
    ) -> None:
        self.registry = registry
        # Read after a short sub-bucket (a sold-out budget refuses at once), told of releases.
        self.sellout = sellout
        self.store = store
        self.replenisher = replenisher
        self.recovery = recovery
        self.default_ttl_ms = default_ttl_ms
        self.max_ttl_ms = max_ttl_ms
        self.clock = clock
        self.log: SpendLog = log or Unlogged()
        # After a Redis loss, how a reservation ended before it is known from the spend log only.
        self.recall = recall
        # budgets/activity.py: the budget marked active, then its new reservation scheduled to expire.
        self.activity: Activity | None = None

    async def reserve(self, budget_id: str, request_id: str, amount: int, ttl_ms: int) -> ReservationAnswer:
        check_budget_id(budget_id)
        check_request_id(request_id)
        check_amount(amount)
        ttl = resolve_ttl(ttl_ms, self.default_ttl_ms, self.max_ttl_ms)
        meta = await self.registry.get(budget_id)
        now = self.clock()
        reason = meta.outside_window(datetime.fromtimestamp(now / 1000, UTC))
        if reason is not None:
            return ReservationAnswer("BUDGET_OUTSIDE_WINDOW", message=reason)
        fingerprint = reserve_fingerprint(budget_id, amount, ttl_ms)
        previous = await self.store.claim(request_id, fingerprint)
        if previous is not None and previous != fingerprint:
            return ReservationAnswer("CONFLICT", message=_REFUSALS["CONFLICT"][1].format(r=request_id))
        expires_at = now + ttl
        if self.activity is not None:
            await self.activity.ensure(budget_id)  # active while it holds reservations
        # The loop of Spending.deduct around another script; sharing it needs a change there.
        for _ in range(MAX_ATTEMPTS):
            index = sub_bucket_for(request_id, meta.sub_buckets)
            try:
                r = await self.store.reserve(budget_id, index, request_id, amount, expires_at, meta.gen)
                answer = reserve_answer(r, budget_id, request_id)
                if answer is not None:
                    if r.status == "OK" and self.activity is not None:
                        await self._schedule(budget_id, expires_at)
                    return answer
                if r.status == "STALE" and r.extra > meta.gen:
                    raise StaleGeneration(budget_id)  # rebuilt since the budget was read: reload
                if r.status in ("LOST", "STALE"):
                    # Missing, or an older generation the rebuild has not reset yet: rebuild.
                    raise BucketLost(budget_id, sub_holder(index))
                # SHORT: this sub-bucket cannot cover it; a sold-out budget refuses at once, else
                # refill it or refuse honestly.
                if self.sellout is not None and (await self.sellout.read(budget_id)).sold_out:
                    SOLD_OUT_REFUSALS.inc()
                    return ReservationAnswer(
                        "INSUFFICIENT", message=messages.SOLD_OUT.format(b=budget_id, n=amount)
                    )
                if not await self.replenisher.cover(meta, index, amount):
                    return ReservationAnswer(
                        "INSUFFICIENT", message=messages.INSUFFICIENT.format(b=budget_id, n=amount)
                    )
            except BucketLost:
                await self.recovery.rebuild(budget_id)
                meta = await self.registry.get(budget_id)
            except StaleGeneration:
                self.registry.forget(budget_id)
                meta = await self.registry.get(budget_id)
        raise Unavailable(f"budget {budget_id}: reservation not settled after {MAX_ATTEMPTS} attempts")

    async def _schedule(self, budget_id: str, expires_at: int) -> None:
        """Schedule the budget at its new reservation's expiry. Should that fail, the reservation
        stands (the budget is active while it holds one) and the idle check schedules it."""
        assert self.activity is not None
        try:
            await self.activity.expiring(budget_id, expires_at)
        except Exception as exc:
            log.warning(
                "budget %s: scheduling a reservation's expiry failed (%s); the idle check will",
                budget_id,
                exc,
            )

    async def confirm(self, budget_id: str, reservation_id: str, amount: int) -> ReservationAnswer:
        check_budget_id(budget_id)
        check_request_id(reservation_id, "reservation_id")
        check_amount(amount)
        meta = await self.registry.get(budget_id)
        index = sub_bucket_for(reservation_id, meta.sub_buckets)
        for _ in range(2):
            # A confirm is a deduction: the spend log must know it to settle the sub-bucket
            # after a Redis loss (what was consumed in the lost generation).
            r = await self.log.call(
                self.store.confirm(budget_id, index, reservation_id, amount, self.clock()),
                deduct_entry(budget_id, index, reservation_id),
            )
            answer = confirm_answer(r, budget_id, reservation_id)
            if answer is not None:
                _count(r.status, "confirmed", released_now=r.extra)
                if r.extra > 0 and r.status in ("OK", "EXPIRED"):
                    await self._released(budget_id)
                if answer.code == "UNKNOWN_REQUEST":
                    return await self._confirmed_before_loss(meta, reservation_id, amount) or answer
                return answer
            # LOST: after the rebuild a surviving record is of an older generation: dropped.
            await self.recovery.rebuild(budget_id)
            meta = await self.registry.get(budget_id)
        raise Unavailable(f"budget {budget_id}: sub-bucket {index} could not be rebuilt")

    async def cancel(self, budget_id: str, reservation_id: str) -> ReservationAnswer:
        check_budget_id(budget_id)
        check_request_id(reservation_id, "reservation_id")
        meta = await self.registry.get(budget_id)
        index = sub_bucket_for(reservation_id, meta.sub_buckets)
        for _ in range(2):
            r = await self.log.call(
                self.store.cancel(budget_id, index, reservation_id, self.clock()),
                cancel_entry(budget_id, index, reservation_id, meta.gen),
            )
            answer = cancel_answer(r, budget_id, reservation_id)
            if answer is not None:
                _count(r.status, "cancelled", released_now=r.value)
                if r.value > 0 and r.status in ("OK", "EXPIRED"):
                    await self._released(budget_id)
                if answer.code == "UNKNOWN_REQUEST":
                    return await self._cancelled_before_loss(meta, reservation_id) or answer
                return answer
            await self.recovery.rebuild(budget_id)
            meta = await self.registry.get(budget_id)
        raise Unavailable(f"budget {budget_id}: sub-bucket {index} could not be rebuilt")

    async def _released(self, budget_id: str) -> None:
        """A reservation gave budget back: a sold-out budget may serve again."""
        if self.sellout is not None:
            await self.sellout.changed(budget_id)

    async def _ended_before_loss(self, meta: BudgetMeta, reservation_id: str) -> SpendEntry | None:
        """How a reservation Redis does not know ended before a loss, if the log knows. Its record
        is checked before its bucket, so the loss may not have been seen yet: rebuild first (a
        few reads when nothing was lost)."""
        if self.recall is None:
            return None
        await self.recovery.rebuild(meta.budget_id)
        meta = await self.registry.get(meta.budget_id)
        if not self.recall.active(meta):
            return None
        return await self.recall.ending(meta, reservation_id)

    async def _confirmed_before_loss(
        self, meta: BudgetMeta, reservation_id: str, amount: int
    ) -> ReservationAnswer | None:
        """A retried confirm that Redis forgot: answered from the log, as before the loss."""
        prior = await self._ended_before_loss(meta, reservation_id)
        if prior is None:
            return None
        rid = reservation_id
        if prior.kind == "cancel":
            return ReservationAnswer("CANCELLED", message=messages.CANCELLED.format(r=rid))
        if prior.amount != amount:
            return ReservationAnswer("CONFLICT", message=messages.CONFIRMED_FOR.format(r=rid, n=prior.amount))
        # What the confirm released then is not logged: 0 here, the message says why.
        return ReservationAnswer(
            "EXISTS",
            amount,
            message=f"{messages.CONFIRMED_ALREADY.format(r=rid)} (before a Redis loss: what it released is not known)",
        )

    async def _cancelled_before_loss(self, meta: BudgetMeta, reservation_id: str) -> ReservationAnswer | None:
        """A retried cancel that Redis forgot: answered from the log, as before the loss."""
        prior = await self._ended_before_loss(meta, reservation_id)
        if prior is None:
            return None
        rid = reservation_id
        if prior.kind == "deduct":
            return ReservationAnswer("CONFIRMED", message=messages.CONFIRMED.format(r=rid))
        return ReservationAnswer(
            "EXISTS", released=prior.amount, message=messages.CANCELLED_ALREADY.format(r=rid)
        )


def _count(status: str, ending: str, released_now: int) -> None:
    """Count a reservation's ending once: only the call whose script ended it reports it."""
    if status == "OK":
        RESERVATIONS.labels(ending).inc()
    elif status == "EXPIRED" and released_now > 0:
        RESERVATIONS.labels("expired").inc()
