"""Argument checks done before any SQL runs.

A bad row must never reach a group-commit batch: the database would refuse it, and with it every
other caller's row in the same transaction. So everything the schema checks is checked here first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from quota_rules.limits import MAX_AMOUNT

from .errors import InvalidAmount, InvalidArgument
from .models import CURRENT_GEN, MARKER_KINDS, LedgerEntry, PolicyValue

MAX_BUDGET_ID: Final = 256
MAX_TRANSFER_ID: Final = 1024
MAX_HOLDER: Final = 256
MAX_UNIT: Final = 64
MAX_TEXT: Final = 4096
MAX_GEN: Final = 2**31 - 1  # PostgreSQL integer
_KIND = re.compile(r"[a-z][a-z_]{0,31}")


def text(name: str, value: object, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidArgument(f"{name} must not be empty")
    if len(value) > max_len:
        raise InvalidArgument(f"{name} is longer than {max_len} characters")
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8.
    if "\x00" in value:
        raise InvalidArgument(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{name} is not valid Unicode text") from exc
    return value


def amount(name: str, value: object, *, allow_zero: bool) -> int:
    # bool is an int subclass; True must not be accepted as 1 unit.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAmount(f"{name} must be an integer, got {type(value).__name__}")
    low = 0 if allow_zero else 1
    if value < low or value > MAX_AMOUNT:
        raise InvalidAmount(f"{name} must be between {low} and {MAX_AMOUNT}, got {value}")
    return value


def state(value: object) -> str:
    if value not in ("active", "paused", "closed"):
        raise InvalidArgument(f"state must be one of active, paused, closed; got {value!r}")
    return str(value)


def timestamp(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArgument(f"{name} must be a datetime or None")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware")
    return value


def policy(value: object) -> dict[str, PolicyValue]:
    if not isinstance(value, dict):
        raise InvalidArgument("policy must be a dict")
    out: dict[str, PolicyValue] = {}
    for key, item in value.items():
        text("policy key", key, max_len=64)
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise InvalidArgument(f"policy[{key!r}] must be an int or a string")
        if isinstance(item, int) and abs(item) > MAX_AMOUNT:
            raise InvalidArgument(f"policy[{key!r}] is out of range")
        if isinstance(item, str):
            text(f"policy[{key!r}]", item, max_len=MAX_TEXT, allow_empty=True)
        out[key] = item
    return out


def count(name: str, value: object, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer between {low} and {high}")
    return value


def entry(value: LedgerEntry) -> LedgerEntry:
    if not isinstance(value, LedgerEntry):
        raise InvalidArgument("record() takes a LedgerEntry")
    text("budget_id", value.budget_id, max_len=MAX_BUDGET_ID)
    text("transfer_id", value.transfer_id, max_len=MAX_TRANSFER_ID)
    text("from_holder", value.from_holder, max_len=MAX_HOLDER)
    text("to_holder", value.to_holder, max_len=MAX_HOLDER)
    text("actor", value.actor, max_len=MAX_TEXT, allow_empty=True)
    text("reason", value.reason, max_len=MAX_TEXT, allow_empty=True)
    if not isinstance(value.kind, str) or not _KIND.fullmatch(value.kind):
        raise InvalidArgument(f"kind must match {_KIND.pattern}, got {value.kind!r}")
    amount("amount", value.amount, allow_zero=True)
    marker = value.kind in MARKER_KINDS
    count("gen", value.gen, low=CURRENT_GEN if marker else 1, high=MAX_GEN)
    if marker and value.amount != 0:
        raise InvalidAmount(f"{value.kind} rows move nothing: amount must be 0")
    if value.from_holder == value.to_holder and value.amount != 0:
        raise InvalidArgument("a transfer needs two different holders")
    return value
