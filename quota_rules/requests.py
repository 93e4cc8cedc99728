"""What a request means, as the center and the agents both judge it: its fingerprint, its TTL, and
the words of its outcomes.

A request id is bound to the fingerprint of its first use; a retry through another agent or
straight at the center must find the same fingerprint, so there is exactly one way to build it.
"""

from __future__ import annotations

from quota_rules.limits import InvalidInput


def deduct_fingerprint(budget_id: str, amount: int) -> str:
    return f"deduct|{budget_id}|{amount}"


def return_fingerprint(budget_id: str, amount: int, deduction_id: str) -> str:
    return f"return|{budget_id}|{amount}|{deduction_id}"


def reserve_fingerprint(budget_id: str, amount: int, ttl_ms: int) -> str:
    """Budget, amount and the TTL as asked (0 stays 0).

    The TTL asked for is part of the request, so another one is a CONFLICT; the TTL as asked,
    not as resolved, so a change of the default between a call and its retry does not turn the
    retry into a conflict. ``expires_at_ms`` is the answer, not the request.
    """
    return f"reserve|{budget_id}|{amount}|{ttl_ms}"


def resolve_ttl(ttl_ms: int, default_ms: int, max_ms: int) -> int:
    """The TTL a reservation gets: ``ttl_ms``, or ``default_ms`` for 0; InvalidInput if out of range."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
        raise InvalidInput("ttl_ms must be an integer number of milliseconds")
    if ttl_ms < 0:
        raise InvalidInput(f"ttl_ms must not be negative, got {ttl_ms} (0 takes the default {default_ms})")
    if ttl_ms > max_ms:
        raise InvalidInput(f"ttl_ms {ttl_ms} exceeds the maximum {max_ms}")
    return ttl_ms or default_ms


# Outcome messages, formatted with b=budget id, r=request id, d=deduction id.
PAUSED = "budget {b} is paused"
CLOSED = "budget {b} is closed"
CONFLICT = "request_id {r} was already used for a different request"
APPLIED = "request {r} was already applied"
RETURN_APPLIED = "return {r} was already applied"

# A refusal code of the scripts (and of an agent's view of the budget) -> result code and message.
REFUSALS: dict[str, tuple[str, str]] = {
    "PAUSED": ("BUDGET_PAUSED", PAUSED),
    "CLOSED": ("BUDGET_CLOSED", CLOSED),
    "CONFLICT": ("CONFLICT", CONFLICT),
}


def conflict(request_id: str) -> str:
    return CONFLICT.format(r=request_id)


def insufficient(budget_id: str, amount: int) -> str:
    """The honest refusal: what is left of the budget is less than the request."""
    return f"budget {budget_id} has less than {amount} left"
