"""The agent's request records in a memory-mapped ring next to the journal, so retries survive SIGKILL.

Every record (``region_agent.core.records``) is written here, by a store to memory, before its
answer goes out, and before the counters that count it: a restarted agent reads the ring back and
answers a retry as before. The ring, its crash safety and what it guarantees: docs/agents.md,
"The agent's journal and record log" and "The record log's layout"; one entry's bytes:
``region_agent.storage.entries``.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from region_agent.core.records import Record, Reservation, Served, fingerprint_digest
from region_agent.storage.entries import (
    CRC,
    DEDUCT,
    ENTRY_SIZE,
    FORWARDED,
    NO_BUDGET,
    RESERVATION,
    RETURN,
    SEQ_OFFSET,
    STATES,
    Entry,
    decode,
    pack,
    unpack,
)
from region_agent.storage.journal import Journal, JournalError, MappedFile, lock_exclusive

log = logging.getLogger(__name__)

MAGIC = b"QAGRECS1"
VERSION = 1
HEADER_SIZE = 256
DEFAULT_CAPACITY = 1_000_000
_DIGESTS_KEPT = 4096

_HEADER = struct.Struct("<8sIIII16s")
assert _HEADER.size <= HEADER_SIZE
assert HEADER_SIZE % 8 == 0


class RecordLogError(JournalError):
    """The record log cannot be used (not one, damaged, another journal's, or in use)."""


class RecordLogLocked(RecordLogError):
    """Another process holds the record log."""


def path_for(journal_path: str | os.PathLike[str]) -> Path:
    """Where the record log of the journal at ``journal_path`` lives."""
    return Path(f"{os.fspath(journal_path)}.records")


class RecordLog(MappedFile):
    """The record ring of ``journal``, at ``path`` (``<journal>.records``), created if missing.

    ``unix_offset_ms`` turns the agent-monotonic times of records into unix ms and back (a
    restarted process has another monotonic origin). A ``capacity`` above the file's grows it;
    one below is not applied (the file keeps its entries and its size).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        journal: Journal,
        *,
        capacity: int = DEFAULT_CAPACITY,
        unix_offset_ms: int = 0,
    ) -> None:
        if capacity < 1:
            raise RecordLogError(f"record log capacity must be positive, got {capacity}")
        self.path = Path(path)
        self.journal = journal
        self.unix_offset_ms = unix_offset_ms
        self._seq = 0
        self._head = 0
        self._pinned: set[int] = set()  # slots of the latest entries of reservations still held
        self._held: dict[str, int] = {}  # reservation id -> its pinned slot
        self._digests: dict[str, bytes] = {}
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
            if os.fstat(self._fd).st_size == 0:
                self._create(capacity)
            self.capacity = self._check_header()
            self._map = mmap.mmap(self._fd, _file_size(self.capacity), mmap.MAP_SHARED)
            self._write_header()
            self._loaded = self._scan()
            if capacity > self.capacity:
                self._grow_after_head(capacity)
            elif capacity < self.capacity:
                log.warning(
                    "record log %s keeps its capacity of %d entries (%d asked): it is never shrunk",
                    self.path,
                    self.capacity,
                    capacity,
                )
        except BaseException:
            os.close(self._fd)
            raise

    # ---- the RecordStore interface ----------------------------------------------------------

    def write(self, request_id: str, record: Record, counter_seq: int) -> None:
        """Store the current state of ``request_id``'s record; ``counter_seq``: the seq its budget's
        counters have once they include this change (0 for a record that changes no counters)."""
        at = record.at + self.unix_offset_ms
        returned = confirmed = expires = 0
        state = 0
        if isinstance(record, Served):
            kind = DEDUCT if record.kind == "deduct" else RETURN
            budget = self.journal.slot(record.budget_id)
            amount = record.answer.amount
            returned = record.returned if kind == DEDUCT else record.answer.refundable
        elif isinstance(record, Reservation):
            kind, state = RESERVATION, STATES[record.state]
            budget = self.journal.slot(record.budget_id)
            amount, returned, confirmed = record.amount, record.returned, record.confirmed
            expires = record.expires_at_ms
        else:
            kind, budget, amount = FORWARDED, NO_BUDGET, 0
        seq = self._seq + 1
        raw_id = request_id.encode("utf-8")
        digest = self._digest(record.fingerprint)
        slot = self._store(
            pack(
                kind,
                state,
                raw_id,
                seq,
                counter_seq,
                budget,
                at,
                amount,
                returned,
                confirmed,
                expires,
                digest,
            ),
            seq,
        )
        if kind == RESERVATION:
            previous = self._held.pop(request_id, None)
            if previous is not None:
                self._pinned.discard(previous)
            if state == STATES["held"]:
                self._held[request_id] = slot
                self._pinned.add(slot)

    def write_many(self, records: Sequence[tuple[str, Record]], counter_seq: int) -> None:
        """``write`` of each record. Deductions served from the slice (a DeductBatch) take a
        shorter path to the same entries: packed with what they share looked up once, then
        stored in runs of consecutive slots (``_put_entries``)."""
        shared: tuple[str, str, int, bytes] | None = None  # budget, fingerprint, its slot, its digest
        crc_of, crc_bytes = zlib.crc32, CRC.pack
        entries: list[bytes] = []
        seq = self._seq
        for request_id, record in records:
            if not (type(record) is Served and record.kind == "deduct"):
                self._put_entries(entries, seq)
                entries = []
                self.write(request_id, record, counter_seq)
                seq = self._seq
                continue
            if shared is None or shared[0] != record.budget_id or shared[1] != record.fingerprint:
                budget_id, fingerprint = record.budget_id, record.fingerprint
                shared = (budget_id, fingerprint, self.journal.slot(budget_id), self._digest(fingerprint))
            raw_id = request_id.encode("utf-8")
            seq += 1
            at = record.at + self.unix_offset_ms
            amount, returned, budget, digest = record.answer.amount, record.returned, shared[2], shared[3]
            body = pack(DEDUCT, 0, raw_id, seq, counter_seq, budget, at, amount, returned, 0, 0, digest)
            entries.append(crc_bytes(crc_of(body)) + body)
        self._put_entries(entries, seq)

    def load(self) -> list[tuple[str, Record]]:
        """The records found in the ring when it was opened, oldest first, as last answered."""
        loaded, self._loaded = self._loaded, []
        return loaded

    # ---- internals --------------------------------------------------------------------------

    def _store(self, body: bytes, seq: int) -> int:
        """Write the entry of ``body`` (numbered ``seq``) in the next slot: the body, then its CRC,
        which completes it. Its slot."""
        slot = self._next_slot()
        offset = HEADER_SIZE + slot * ENTRY_SIZE
        self._map[offset + CRC.size : offset + ENTRY_SIZE] = body
        CRC.pack_into(self._map, offset, zlib.crc32(body))  # last: the entry is complete
        self._seq = seq
        return slot

    def _put_entries(self, entries: list[bytes], last_seq: int) -> None:
        """Store whole entries (CRC and body), numbered up to ``last_seq``, in the next slots.

        Consecutive free slots take one copy; an entry torn by a kill fails its CRC as when
        written alone (``_store``), and these entries' counters are written only after them.
        """
        done = 0
        while done < len(entries):
            if self._pinned:  # slots to step over: one at a time
                slot = self._next_slot()
                offset = HEADER_SIZE + slot * ENTRY_SIZE
                self._map[offset : offset + ENTRY_SIZE] = entries[done]
                done += 1
                continue
            run = min(len(entries) - done, self.capacity - self._head)
            offset = HEADER_SIZE + self._head * ENTRY_SIZE
            self._map[offset : offset + run * ENTRY_SIZE] = b"".join(entries[done : done + run])
            self._head = (self._head + run) % self.capacity
            done += run
        if entries:
            self._seq = last_seq

    def _digest(self, fingerprint: str) -> bytes:
        """``fingerprint_digest``, remembered: a budget's fingerprints repeat (same kind and amount)."""
        digest = self._digests.get(fingerprint)
        if digest is None:
            digest = fingerprint_digest(fingerprint)
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.clear()
            self._digests[fingerprint] = digest
        return digest

    def _next_slot(self) -> int:
        slot = self._head
        if self._pinned:
            start = slot
            while slot in self._pinned:
                slot = (slot + 1) % self.capacity
                if slot == start:  # every entry is a held reservation: make room (rare)
                    slot = self.capacity
                    self._grow(self.capacity * 2)
                    break
        self._head = (slot + 1) % self.capacity
        return slot

    def _scan(self) -> list[tuple[str, Record]]:
        """Read the ring: the latest valid entry of each id, as records, oldest first.

        Entries not covered by their budget's counters in the journal (written just before a
        kill, never answered) are erased, so they cannot come back once the counters move on.
        """
        counters = self.journal.load()
        budgets = self.journal.budgets_by_slot()
        latest: dict[str, Entry] = {}
        torn = erased = 0
        top = (0, -1)  # (seq, slot) of the newest entry: the ring continues after it
        for slot, seq in enumerate(self._seqs()):
            if seq == 0:
                continue
            entry = self._read(slot)
            if entry is None:
                torn += 1
                continue
            top = max(top, (entry.seq, slot))
            if entry.kind != FORWARDED:
                budget = budgets.get(entry.budget)
                c = counters.get(budget) if budget is not None else None
                if c is None or entry.counter_seq > c.seq:
                    self._erase(slot)
                    erased += 1
                    continue
            known = latest.get(entry.request_id)
            if known is None or entry.seq > known.seq:
                latest[entry.request_id] = entry
        self._seq, self._head = top[0], (top[1] + 1) % self.capacity
        if torn or erased:
            log.warning(
                "record log %s: %d torn entries ignored, %d entries of changes never counted erased",
                self.path,
                torn,
                erased,
            )
        loaded: list[tuple[str, Record]] = []
        for entry in sorted(latest.values(), key=lambda e: (e.at, e.seq)):
            record = decode(entry, budgets.get(entry.budget, ""), self.unix_offset_ms)
            if isinstance(record, Reservation) and record.state == "held":
                self._held[entry.request_id] = entry.slot
                self._pinned.add(entry.slot)
            loaded.append((entry.request_id, record))
        return loaded

    def _seqs(self) -> list[int]:
        """The seq of every entry, read as one strided column of u64 (0: never written)."""
        with memoryview(self._map) as raw, raw.cast("Q") as words:
            first = (HEADER_SIZE + SEQ_OFFSET) // 8
            column = words[first :: ENTRY_SIZE // 8]
            try:
                return column.tolist()
            finally:
                column.release()

    def _read(self, slot: int) -> Entry | None:
        """The entry in ``slot``, or None if torn (its CRC does not match) or impossible."""
        offset = HEADER_SIZE + slot * ENTRY_SIZE
        (crc,) = CRC.unpack_from(self._map, offset)
        body = self._map[offset + CRC.size : offset + ENTRY_SIZE]
        if zlib.crc32(body) != crc:
            return None
        return unpack(slot, body)

    def _erase(self, slot: int) -> None:
        offset = HEADER_SIZE + slot * ENTRY_SIZE
        self._map[offset : offset + ENTRY_SIZE] = bytes(ENTRY_SIZE)

    def _lock(self) -> None:
        lock_exclusive(
            self._fd,
            lambda by: RecordLogLocked(
                f"record log {self.path} is in use by another agent{by}; each agent needs its own journal"
            ),
            _pid_in,
        )

    def _create(self, capacity: int) -> None:
        os.ftruncate(self._fd, _file_size(capacity))
        header = _HEADER.pack(MAGIC, VERSION, ENTRY_SIZE, capacity, os.getpid(), self.journal.identity)
        os.pwrite(self._fd, header, 0)

    def _write_header(self) -> None:
        _HEADER.pack_into(
            self._map, 0, MAGIC, VERSION, ENTRY_SIZE, self.capacity, os.getpid(), self.journal.identity
        )

    def _check_header(self) -> int:
        size = os.fstat(self._fd).st_size
        raw = os.pread(self._fd, _HEADER.size, 0)
        if len(raw) < _HEADER.size or raw[:8] != MAGIC:
            raise RecordLogError(
                f"{self.path} is not a region agent record log (no record log header); refusing to use it"
            )
        _, version, entry_size, capacity, _, journal_id = _HEADER.unpack(raw)
        if version != VERSION or entry_size != ENTRY_SIZE:
            raise RecordLogError(
                f"record log {self.path} has format {version}/{entry_size},"
                f" this agent reads {VERSION}/{ENTRY_SIZE}"
            )
        if capacity < 1 or size < _file_size(capacity):
            raise RecordLogError(
                f"record log {self.path} is truncated: {size} bytes for {capacity} entries;"
                " refusing to use it"
            )
        if journal_id != self.journal.identity:
            raise RecordLogError(
                f"record log {self.path} belongs to another journal than {self.journal.path}; its records"
                " name that journal's budgets. Move it away (retries of its requests are then not recognised)"
            )
        return int(capacity)

    def _grow_after_head(self, capacity: int) -> None:
        """Grow to ``capacity`` with the new, empty entries right after the head, where the ring
        writes next: the entries from the head to the old end (the oldest) move to the new end,
        so they are still the first overwritten. A kill during the move leaves an entry twice
        (same seq, same content: harmless) or torn where its other copy is intact."""
        old, head = self.capacity, self._head
        shift = capacity - old
        self._grow(capacity)
        if head == 0:  # the newest entry is the last one: the new space already follows it
            self._head = old
            return
        start = HEADER_SIZE + head * ENTRY_SIZE
        self._map.move(start + shift * ENTRY_SIZE, start, (old - head) * ENTRY_SIZE)
        self._map[start : start + shift * ENTRY_SIZE] = bytes(shift * ENTRY_SIZE)
        self._pinned = {slot + shift if slot >= head else slot for slot in self._pinned}
        self._held = {rid: slot + shift if slot >= head else slot for rid, slot in self._held.items()}

    def _grow(self, capacity: int) -> None:
        # Rare (a capacity raised between runs, or a ring full of held reservations): system calls are fine.
        self._map.flush()
        os.ftruncate(self._fd, _file_size(capacity))
        self._map.close()
        self._map = mmap.mmap(self._fd, _file_size(capacity), mmap.MAP_SHARED)
        self.capacity = capacity
        self._write_header()


def _file_size(capacity: int) -> int:
    return HEADER_SIZE + capacity * ENTRY_SIZE


def _pid_in(fd: int) -> int:
    raw = os.pread(fd, _HEADER.size, 0)
    if len(raw) < _HEADER.size or raw[:8] != MAGIC:
        return 0
    return int(_HEADER.unpack(raw)[4])
