"""What each request id did at this agent, kept for a retention window: exactly once (pure).

Ids bind as at the center (``quota_rules.fingerprints``); an id forwarded once stays with the
center for good. docs/agents.md, "Request records", says why each record kind exists and what
survives a restart.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from quota_rules import messages
from region_agent.core.serving import Forward


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of a call; ``code`` is a ResultCode name without its prefix (OK, EXISTS, ...)."""

    code: str
    amount: int = 0
    message: str = ""
    refundable: int = 0  # Return: what the deduction can still refund
    released: int = 0  # Confirm and Cancel: what went back to the slice
    expires_at_ms: int = 0  # Reserve: unix ms after which it is released


@dataclass(slots=True)
class Served:
    """A deduction or return served from the slice, with its answer."""

    kind: str  # "deduct" or "return"
    budget_id: str
    fingerprint: str
    answer: Answer
    at: int
    returned: int = 0  # deductions: what Return refunded of it


@dataclass(slots=True)
class Reservation:
    """A reservation made from the slice, and how it ended."""

    budget_id: str
    fingerprint: str
    amount: int
    expires_at: int  # agent-monotonic ms
    expires_at_ms: int  # unix ms, as told to the caller
    at: int
    state: str = "held"  # held, confirmed, cancelled, expired
    confirmed: int = 0
    released: int = 0
    returned: int = 0  # once confirmed it refunds like a deduction


@dataclass(slots=True)
class Forwarded:
    """A request sent to the center: its id stays bound there, so a retry is forwarded again.

    ``answer``: the center's, once known and if it took effect, to answer retries without a call.
    """

    fingerprint: str
    at: int
    answer: Answer | None = None


Record = Served | Reservation | Forwarded


def fingerprint_digest(fingerprint: str) -> bytes:
    """The 16-byte BLAKE2b digest of a fingerprint (a digested one, ``#hex``, is its own)."""
    if fingerprint.startswith("#"):
        return bytes.fromhex(fingerprint[1:])
    return hashlib.blake2b(fingerprint.encode("utf-8"), digest_size=16).digest()


def same_request(stored: str, fingerprint: str) -> bool:
    """True if a record's fingerprint is the one of this request.

    Records read back from the record log carry the fingerprint's digest (``"#" + hex``).
    """
    if stored == fingerprint:
        return True
    return stored.startswith("#") and stored == "#" + fingerprint_digest(fingerprint).hex()


def answer_again(r: Record, request_id: str, fingerprint: str, applied: str) -> Answer | Forward:
    """The answer to a request whose id has the record ``r``; ``applied``: the EXISTS message."""
    if not same_request(r.fingerprint, fingerprint):
        return Answer("CONFLICT", message=messages.CONFLICT.format(r=request_id))
    message = applied.format(r=request_id)
    if isinstance(r, Served):
        return replace(r.answer, code="EXISTS", message=message)
    if isinstance(r, Reservation):
        return Answer("EXISTS", r.amount, message, expires_at_ms=r.expires_at_ms)
    if r.answer is not None:
        return replace(r.answer, code="EXISTS", message=r.answer.message or message)
    return Forward("retry", "forwarded before: only the center knows whether it took effect")


class NoRecordLog:
    """Records kept in memory only: for tests of the core, and for an agent run without a journal file."""

    def load(self) -> list[tuple[str, Record]]:
        return []

    def write(self, request_id: str, record: Record, counter_seq: int) -> None:
        pass

    def write_many(self, records: Sequence[tuple[str, Record]], counter_seq: int) -> None:
        pass


@dataclass(slots=True)
class Records:
    """The records by request id: the oldest go after ``retention_ms`` or beyond ``max_records``,
    but a held reservation is state, not the memory of an answer, and stays until it ends."""

    retention_ms: int
    max_records: int
    # A plain dict to find a record and a deque of ids in age order: an OrderedDict does both,
    # but its insertions cost several times a dict's, on every request served.
    _by_id: dict[str, Record] = field(default_factory=dict)
    _age: deque[str] = field(default_factory=deque)

    def get(self, request_id: str) -> Record | None:
        return self._by_id.get(request_id)

    def put(self, request_id: str, record: Record) -> None:
        """Bind a new ``request_id`` (insertion order is age order: ``at`` never goes back for a new id)."""
        self._by_id[request_id] = record
        self._age.append(request_id)
        if len(self._by_id) > self.max_records:
            self._drop_oldest(lambda _r: True)

    def put_many(self, records: Sequence[tuple[str, Record]]) -> None:
        """``put`` of each new (request id, record), in order."""
        self._by_id.update(records)
        self._age.extend(request_id for request_id, _ in records)
        while len(self._by_id) > self.max_records:
            if not self._drop_oldest(lambda _r: True):
                break

    def prune(self, now: int) -> int:
        """Drop records older than the retention window; return how many went."""
        horizon = now - self.retention_ms
        return self._drop_oldest(lambda r: r.at < horizon, all_matching=True)

    def ids(self) -> list[str]:
        """The request ids kept, oldest first (a held reservation passed over goes last)."""
        return list(self._age)

    def __len__(self) -> int:
        return len(self._by_id)

    def _drop_oldest(self, old: Callable[[Record], bool], *, all_matching: bool = False) -> int:
        dropped = 0
        skipped = 0
        while self._age and skipped < len(self._age):
            request_id = self._age[0]
            record = self._by_id.get(request_id)
            if record is None:  # an id put twice: its record went with the first
                self._age.popleft()
                continue
            if not old(record):
                break
            self._age.popleft()
            if isinstance(record, Reservation) and record.state == "held":
                # Still bucket state: keep it, behind the others, until it ends.
                self._age.append(request_id)
                skipped += 1
                continue
            del self._by_id[request_id]
            dropped += 1
            if not all_matching:
                break
        return dropped
