"""One entry of the record log: a request's record in 256 fixed bytes, and back (pure).

The layout, and why an entry keeps a digest of the fingerprint but the request id in full:
docs/agents.md, "The record log's layout".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from quota_rules.limits import MAX_ID_BYTES
from region_agent.core.records import Answer, Forwarded, Record, Reservation, Served

ENTRY_SIZE = 256
NO_BUDGET = 0xFFFFFFFF  # the budget slot of a forwarded request's entry

CRC = struct.Struct("<I")
_BODY = struct.Struct("<4BQqII5q16s128s40x")  # the entry after its CRC
assert CRC.size + _BODY.size == ENTRY_SIZE
assert MAX_ID_BYTES <= 128  # a request id is kept in full
assert ENTRY_SIZE % 8 == 0
SEQ_OFFSET = 8  # of seq in an entry, 8-aligned: the load scans the seqs as one u64 column

DEDUCT, RETURN, RESERVATION, FORWARDED = 1, 2, 3, 4
STATES = {"held": 1, "confirmed": 2, "cancelled": 3, "expired": 4}
_STATE_NAMES = {code: name for name, code in STATES.items()}


def pack(
    kind: int,
    state: int,
    raw_id: bytes,
    seq: int,
    counter_seq: int,
    budget: int,
    at: int,
    amount: int,
    returned: int,
    confirmed: int,
    expires: int,
    digest: bytes,
) -> bytes:
    """An entry's body (all of it but the CRC)."""
    return _BODY.pack(
        kind,
        state,
        len(raw_id),
        0,
        seq,
        counter_seq,
        budget,
        0,
        at,
        amount,
        returned,
        confirmed,
        expires,
        digest,
        raw_id,
    )


@dataclass(frozen=True, slots=True)
class Entry:
    slot: int
    seq: int
    kind: int
    state: int
    counter_seq: int
    budget: int
    at: int
    amount: int
    returned: int
    confirmed: int
    expires: int
    fingerprint: bytes
    request_id: str


def unpack(slot: int, body: bytes) -> Entry | None:
    """The entry whose body (its CRC checked) is ``body``, or None if it is impossible."""
    kind, state, length, _, seq, counter_seq, budget, _, *amounts, fp, raw_id = _BODY.unpack(body)
    at, amount, returned, confirmed, expires = amounts
    if not DEDUCT <= kind <= FORWARDED or not 0 < length <= MAX_ID_BYTES:
        return None
    if kind == RESERVATION and state not in _STATE_NAMES:
        return None
    try:
        request_id = raw_id[:length].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Entry(
        slot,
        seq,
        kind,
        state,
        counter_seq,
        budget,
        at,
        amount,
        returned,
        confirmed,
        expires,
        fp,
        request_id,
    )


def decode(e: Entry, budget_id: str, unix_offset_ms: int) -> Record:
    """The record an entry keeps, on the agent-monotonic clock ``unix_offset_ms`` gives."""
    at = e.at - unix_offset_ms
    fingerprint = "#" + e.fingerprint.hex()  # compared by digest (records.same_request)
    if e.kind == DEDUCT:
        return Served("deduct", budget_id, fingerprint, Answer("OK", e.amount), at, e.returned)
    if e.kind == RETURN:
        return Served("return", budget_id, fingerprint, Answer("OK", e.amount, refundable=e.returned), at)
    if e.kind == FORWARDED:
        return Forwarded(fingerprint, at)
    state = _STATE_NAMES[e.state]
    released = {"held": 0, "confirmed": e.amount - e.confirmed}.get(state, e.amount)
    return Reservation(
        budget_id,
        fingerprint,
        e.amount,
        e.expires - unix_offset_ms,
        e.expires,
        at,
        state,
        e.confirmed,
        released,
        e.returned,
    )
