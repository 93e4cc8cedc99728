"""Request records: what each request id did at this agent, kept for a retention window (pure).

Request ids are global, as at the center: the first use of an id binds it to a fingerprint of
the request (kind, budget, amount, refunded deduction, TTL asked), and a later use with another
fingerprint is a CONFLICT whatever budget it names. A record is one of

* ``Served``: a deduction or return this agent served from its slice, with its answer (a
  deduction also counts what has been refunded of it);
* ``Reservation``: a reservation made from the slice, and how it ended;
* ``Forwarded``: a request sent to the center. Its id stays bound to the center for good: a
  retry is forwarded again (the center applies it once), never served from the slice, since
  the first attempt may have been applied at the center even if its answer was lost. The
  center's answer, once known and if it took effect, is kept to answer retries without a call.

Records older than the retention window are dropped, the oldest first, and so are the oldest
when there are more than ``max_records``; a held reservation is state, not a memory of an
answer, and is kept until it ends.

Every record is also written to a ``RecordStore`` before its answer goes out (the agent's
record log, ``region_agent.record_log``, in production), so a restarted agent knows them.
Records read back from it carry the fingerprint's digest (``"#" + hex``) instead of the
fingerprint, and are compared by digest (``same_request``).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


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
    kind: str  # "deduct" or "return"
    budget_id: str
    fingerprint: str
    answer: Answer
    at: int
    returned: int = 0  # deductions: what Return refunded of it


@dataclass(slots=True)
class Reservation:
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
    """True if a record's fingerprint (perhaps digested) is the one of this request."""
    if stored == fingerprint:
        return True
    return stored.startswith("#") and stored == "#" + fingerprint_digest(fingerprint).hex()


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
