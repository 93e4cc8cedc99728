"""Input validation shared by every entry point (pure, no I/O).

Redis Lua numbers are doubles, so every amount and total must stay within the
integers a double represents exactly.
"""

from __future__ import annotations

import re

MAX_AMOUNT = 2**53 - 1
MAX_ID_BYTES = 128
MAX_BATCH = 10_000  # items of one DeductBatch, at the center and at an agent

# Budget ids become part of Redis hash tags (quota_center/buckets/keys.py), so braces, spaces and
# control characters are excluded.
_BUDGET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidInput(ValueError):
    """A request field is malformed; the message says which and why."""


def check_amount(amount: int, field: str = "amount") -> int:
    """Return ``amount`` if it is an integer in 1..2^53-1, else raise InvalidInput."""
    if type(amount) is int and 0 < amount <= MAX_AMOUNT:  # the common case, in one test
        return amount
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(f"{field} must be an integer number of minor units")
    if amount <= 0:
        raise InvalidInput(f"{field} must be positive, got {amount}")
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"{field} {amount} exceeds the maximum {MAX_AMOUNT} (2^53-1)")
    return amount


def check_batch_size(count: int) -> int:
    """A DeductBatch holds 1..MAX_BATCH items."""
    if count == 0:
        raise InvalidInput("items must not be empty")
    if count > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} items per batch, got {count}")
    return count


def check_total(total: int) -> int:
    """A budget total may be zero (stock not yet arrived) but never negative or too large."""
    if total < 0:
        raise InvalidInput(f"total must not be negative, got {total}")
    if total > MAX_AMOUNT:
        raise InvalidInput(f"total {total} exceeds the maximum {MAX_AMOUNT} (2^53-1)")
    return total


def check_budget_id(budget_id: str) -> str:
    if not budget_id:
        raise InvalidInput("budget_id is required")
    if not _BUDGET_ID.fullmatch(budget_id):
        raise InvalidInput(
            f"budget_id {budget_id[:80]!r} is invalid: 1-64 characters of letters, digits, '.', '_', ':', '-',"
            " starting with a letter or digit"
        )
    return budget_id


def check_request_id(request_id: str, field: str = "request_id") -> str:
    if request_id and len(request_id) <= MAX_ID_BYTES and request_id.isascii() and request_id.isprintable():
        # The common case without encoding it: printable ASCII is one byte a character and
        # has no control characters.
        return request_id
    if not request_id:
        raise InvalidInput(f"{field} is required")
    size = len(request_id.encode("utf-8"))
    if size > MAX_ID_BYTES:
        raise InvalidInput(f"{field} is {size} bytes, the maximum is {MAX_ID_BYTES}")
    if _CONTROL.search(request_id):
        raise InvalidInput(f"{field} must not contain control characters")
    return request_id


_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_agent_id(agent_id: str) -> str:
    """An agent id names Redis keys and ledger holders: letters, digits, '.', '_', '-', 1..64."""
    if not agent_id:
        raise InvalidInput("agent_id is required")
    if not _AGENT_ID.fullmatch(agent_id):
        raise InvalidInput(
            f"agent_id {agent_id[:80]!r} must be 1..64 letters, digits, '.', '_' or '-', starting with"
            " a letter or digit"
        )
    return agent_id
