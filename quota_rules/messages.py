"""The messages that go with result codes, said alike by the center and the agents.

A caller must not be able to tell whether an agent's slice or the center answered, so both
format these. Fields: ``{b}`` the budget, ``{r}`` the request (or reservation) id, ``{d}`` the
refunded deduction, ``{n}`` an amount.
"""

from __future__ import annotations

# Refusals of spending.
PAUSED = "budget {b} is paused"
CLOSED = "budget {b} is closed"
INSUFFICIENT = "budget {b} has less than {n} left"
# From the budget's sold-out mark (docs/center.md#sell-out); an agent that knows it refuses locally.
SOLD_OUT = "budget {b} has less than {n} left: it is sold out"
SOLD_OUT_HERE = SOLD_OUT + " (known at this region's agent, which did not call the center)"

# A batch item not started before the call's deadline.
UNSETTLED = "request {r} was not started before the call's deadline: send it again with the same request_id"

# Exactly once: a request id seen before.
CONFLICT = "request_id {r} was already used for a different request"
APPLIED = "request {r} was already applied"
RETURN_APPLIED = "return {r} was already applied"
RESERVATION_MADE = "reservation {r} was already made"

# Returns.
RETURN_OWN_ID = "a return needs its own request_id, not the deduction's"
UNKNOWN_DEDUCTION = "no deduction {d} on budget {b} (never made, or older than retention)"
EXCEEDS_REFUNDABLE = "deduction {d} has only {n} left to refund"

# How a reservation ended, told to a Confirm or a Cancel.
UNKNOWN_RESERVATION = "no reservation {r} on budget {b} (never made, or older than retention)"
CONFIRMED_ALREADY = "reservation {r} was already confirmed"
CONFIRMED_FOR = "reservation {r} was already confirmed for {n}"
CONFIRMED = "reservation {r} was confirmed"
CANCELLED_ALREADY = "reservation {r} was already cancelled"
CANCELLED = "reservation {r} was cancelled"
EXPIRED = "reservation {r} expired; its amount was released"
HOLDS_ONLY = "reservation {r} holds only {n}; nothing was confirmed"
