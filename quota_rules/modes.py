"""Allocation modes of a budget, decided from what is still free to spend (pure).

``free`` is what the budget's buckets hold unspent: main plus every holder's
balance. Budget in flight between buckets, reserved, consumed or in doubt is not free.

* NORMAL: holders get full slices (``allocation``), refilled ahead of demand.
* SCARCE, below ``policy.scarcity_threshold`` (default: sub-buckets × max slice, the
  amount the holders would sit on with one full slice each): full slices would strand
  most of what is left in fragments, so agents' slices follow their demand within a fair
  share of main (``allocation.slice_size``), and the center's deductions go to its pool,
  sub-bucket 0, refilled with an equal share of main (``quota_center.refill.cover``); a
  sub-bucket refilled for a reservation gets what the request needs (at least the min slice).
* CENTRAL, below ``policy.central_threshold`` (default: one max slice, the most a
  single grant could move): every deduction is decided at the center, from the pool, into
  which everything free is merged at once; agents keep no balance and forward every
  request, so the last unit can be issued whichever holder a request lands on. One ledger
  row per refill of the pool, none per deduction or refusal (docs/center.md#end-game).

The mode is recomputed on every decision, so a top-up takes a budget back to NORMAL.
Budgets whose policy strategy is ``central`` are always CENTRAL; ``static`` budgets are always
NORMAL (each holder's share is fixed once, see ``quota_center.refill.cover.Replenisher.take_static_share``).
"""

from __future__ import annotations

import enum

from quota_rules.policy import Policy


class Mode(enum.Enum):
    NORMAL = "normal"
    SCARCE = "scarce"
    CENTRAL = "central"


def mode_for(policy: Policy, free: int) -> Mode:
    if policy.strategy == "static":
        return Mode.NORMAL  # shares are fixed up front: there is no end game to switch to
    if policy.strategy == "central" or free < policy.central_threshold:
        return Mode.CENTRAL
    if free < policy.scarcity_threshold:
        return Mode.SCARCE
    return Mode.NORMAL


def grant_for(mode: Mode, policy: Policy, *, need: int, main: int, slice_: int) -> int:
    """How much to move from main to a holder short by ``need``; 0 if main cannot cover ``need``.

    ``slice_`` is the NORMAL-mode slice for this holder (see ``allocation``).
    """
    if need <= 0 or main < need:
        return 0
    if mode is Mode.CENTRAL:
        return need
    if mode is Mode.SCARCE:
        return min(main, max(need, policy.min_slice))
    return min(main, max(need, slice_))
