"""What binds a request id: the fingerprint of the request it was first used for (pure).

Request ids are global. Their first use binds them to the request's fingerprint (kind, budget,
amount, refunded deduction, TTL asked); a later use with another fingerprint is a CONFLICT. The
center and the agents bind ids alike, so a caller cannot tell which of them answered.
"""

from __future__ import annotations


def deduct_fingerprint(budget_id: str, amount: int) -> str:
    return f"deduct|{budget_id}|{amount}"


def return_fingerprint(budget_id: str, amount: int, deduction_id: str) -> str:
    return f"return|{budget_id}|{amount}|{deduction_id}"


def reserve_fingerprint(budget_id: str, amount: int, ttl_ms: int) -> str:
    """What binds a reservation's request id: budget, amount and the TTL as asked (0 stays 0).

    The TTL asked for is part of the request, so another one is a CONFLICT; the TTL as
    asked, not as resolved, so a change of the default between a call and its retry does
    not turn the retry into a conflict. ``expires_at_ms`` is not: it is the answer, and a
    retry gets the original one from the record.
    """
    return f"reserve|{budget_id}|{amount}|{ttl_ms}"
