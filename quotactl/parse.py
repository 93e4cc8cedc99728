"""Strict, pure parsing of command-line values.

Every function takes the raw text and returns the parsed value or raises
``ValueError`` with a message meant for the user (``main`` turns it into an
argparse usage error, exit code 2).

Amounts are minor units and are parsed as integers only: ``int()`` would accept
``" 7"``, ``"1_000"`` or non-ASCII digits and ``float()`` would silently round,
so only ASCII digits are accepted.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import common_pb2
from quota_rules.limits import MAX_AMOUNT, MAX_ID_BYTES

MAX_UINT32 = 2**32 - 1

_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STATES: dict[str, common_pb2.BudgetState] = {
    "active": common_pb2.BUDGET_STATE_ACTIVE,
    "paused": common_pb2.BUDGET_STATE_PAUSED,
    "closed": common_pb2.BUDGET_STATE_CLOSED,
}

STRATEGIES: dict[str, common_pb2.Strategy] = {
    "progressive": common_pb2.STRATEGY_PROGRESSIVE,
    "static": common_pb2.STRATEGY_STATIC,
    "central": common_pb2.STRATEGY_CENTRAL,
}


def parse_int(text: str, *, what: str, minimum: int, maximum: int) -> int:
    """Parse a whole number written with ASCII digits only, within [minimum, maximum]."""
    if _NEGATIVE.fullmatch(text):
        raise ValueError(f"{what} must not be negative, got {text!r}")
    if not _DIGITS.fullmatch(text):
        raise ValueError(
            f"{what} must be a whole number (digits only: no sign, decimals or exponent), got {text!r}"
        )
    # Compare lengths first: int() refuses very long strings (and would be slow on them).
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(maximum)) or int(significant) > maximum:
        raise ValueError(f"{what} must be at most {maximum}, got {text}")
    value = int(significant)
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def parse_amount(text: str, *, what: str = "amount") -> int:
    """An amount of minor units: 1..2^53-1."""
    return parse_int(text, what=what, minimum=1, maximum=MAX_AMOUNT)


def parse_non_negative(text: str, *, what: str) -> int:
    """A count or amount that may be zero: 0..2^53-1."""
    return parse_int(text, what=what, minimum=0, maximum=MAX_AMOUNT)


def parse_name(text: str, *, what: str) -> str:
    """A non-blank identifier (budget id, holder, unit...), taken verbatim."""
    if not text.strip():
        raise ValueError(f"{what} must not be empty")
    return text


def parse_request_id(text: str) -> str:
    """An idempotency key: 1..128 bytes of UTF-8."""
    parse_name(text, what="request id")
    size = len(text.encode())
    if size > MAX_ID_BYTES:
        raise ValueError(f"request id must be at most {MAX_ID_BYTES} bytes, got {size}")
    return text


def parse_timeout(text: str) -> float:
    """A positive, finite number of seconds (fractions allowed: this is not an amount)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {text!r}")
    return value


def parse_target(text: str) -> str:
    """A gRPC target such as ``localhost:50051``."""
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"target must be HOST:PORT, got {text!r}")
    return text


def datetime_to_timestamp(moment: datetime) -> Timestamp:
    """An aware datetime as a protobuf Timestamp, exactly (no float round trip)."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    delta = moment - _EPOCH
    # timedelta normalises to days, 0 <= seconds < 86400, 0 <= microseconds: the
    # canonical Timestamp form (nanos never negative), also before 1970.
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000)


def parse_timestamp(text: str) -> Timestamp:
    """An ISO 8601 time (``2025-01-31``, ``2025-01-31T12:00:00Z``, ``...+02:00``).

    A time without an offset is taken as UTC.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected an ISO 8601 time such as 2025-01-31T00:00:00Z, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime_to_timestamp(moment)
