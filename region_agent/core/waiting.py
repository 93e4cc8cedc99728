"""How long a request waits for a slice on its way before it is forwarded (pure).

A burst at cold start, or a slice that ran dry just before its refill, then costs one or two
center calls instead of one per request (docs/agents.md, "Serving"). The servicer only awaits
what ``next_step`` says; a request its slice covers never gets here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from quota_rules.limits import check_amount, check_budget_id
from region_agent.core.serving import SLICE_HELPS, why_not_local
from region_agent.core.slices import BudgetSlice

# A request its slice cannot cover waits for at most this many slices on their way (the first
# after a budget's first contact is sized from one request; the next one from the burst).
MAX_SLICE_WAITS = 2


class Step(enum.Enum):
    DECIDE = "decide"  # wait no more: decide it now (served here, or forwarded)
    FIRST_CONTACT = "first_contact"  # forward it now: it is the first request for a budget new here
    AWAIT_FIRST_CONTACT = "await_first_contact"  # wait for the answer to the budget's first request
    AWAIT_SLICE = "await_slice"  # ask for a slice (unless one is on its way), and wait for it


def next_step(reason: str | None, *, left_s: float, slices_waited: int, first_contact_open: bool) -> Step:
    """What a waiting request does next.

    ``reason``: why it would be forwarded now, if a slice could change that (``SLICE_HELPS``;
    None otherwise); ``left_s``: what is left of its wait; ``slices_waited``: slices it waited
    for so far; ``first_contact_open``: a request for its budget is at the center as the
    budget's first contact. For a budget first met, the first request goes to the center
    (which tells whether the budget exists) and asks for a slice when it answers; requests
    that arrive meanwhile wait for that, then for the slice, instead of all going to the center.
    """
    if reason is None or left_s <= 0:
        return Step.DECIDE
    if reason == "unknown":
        return Step.AWAIT_FIRST_CONTACT if first_contact_open else Step.FIRST_CONTACT
    if slices_waited >= MAX_SLICE_WAITS:
        return Step.DECIDE  # slices waited for and still short: the center decides
    return Step.AWAIT_SLICE


class SliceWaits:
    """``next_step`` for a request on the budgets ``slices`` holds."""

    def __init__(self, slices: Mapping[str, BudgetSlice]) -> None:
        self._slices = slices

    def reason(self, budget_id: str, amount: int, now: int) -> str | None:
        """Why a request for ``amount`` would be forwarded now, if a slice arriving could change it.

        Changes nothing. Bad input raises InvalidInput, as ``deduct`` would, so that it is
        refused without a wait.
        """
        check_budget_id(budget_id)
        check_amount(amount)
        why = why_not_local(self._slices.get(budget_id), amount, now)
        return why.reason if why is not None and why.reason in SLICE_HELPS else None

    def next_step(
        self,
        budget_id: str,
        amount: int,
        now: int,
        *,
        left_s: float,
        slices_waited: int,
        first_contact_open: bool,
    ) -> Step:
        return next_step(
            self.reason(budget_id, amount, now),
            left_s=left_s,
            slices_waited=slices_waited,
            first_contact_open=first_contact_open,
        )
