"""The agent's cumulative counters per budget, in a memory-mapped file that outlives the process.

An update is a store to memory (no system call, no ``await``), and the kernel keeps the pages when
the process is killed, so a restarted agent reports exactly what it had spent. Layout and crash
safety: docs/agents.md, "The journal's layout".
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Self

from quota_rules.usage import Usage

MAGIC = b"QAGJRNL1"
VERSION = 1
MAX_ID_BYTES = 128
SLOT_SIZE = 256
INITIAL_SLOTS = 64

_HEADER = struct.Struct("<8sIIII16s24x")  # 64 bytes
_SLOT_ID = struct.Struct("<H6x128s")  # 136 bytes
_BLOCK = struct.Struct("<5qI4x")  # 48 bytes
_VALUES = struct.Struct("<5q")
_BLOCK_A = _SLOT_ID.size
_BLOCK_B = _BLOCK_A + _BLOCK.size
assert _BLOCK_B + _BLOCK.size <= SLOT_SIZE


class JournalError(RuntimeError):
    """The journal cannot be used (not a journal, damaged, or in use); the message says why."""


class JournalLocked(JournalError):
    """Another process holds the journal."""


class MemoryJournal:
    """Usage per budget in a dict: for tests of the core, and for an agent run without a journal file."""

    def __init__(self, counters: dict[str, Usage] | None = None) -> None:
        self.counters: dict[str, Usage] = dict(counters or {})

    def load(self) -> dict[str, Usage]:
        return dict(self.counters)

    def write(self, budget_id: str, counters: Usage) -> None:
        self.counters[budget_id] = counters

    def close(self) -> None:
        pass


class MappedFile:
    """A file mapped into memory and locked while open: the journal and the record log."""

    _map: mmap.mmap
    _fd: int

    def flush(self) -> None:
        """Ask the kernel to write the pages to disk (a process kill does not need it; a crash does)."""
        self._map.flush()

    def close(self) -> None:
        """Write out and unmap the file, then close it (which releases its lock)."""
        if self._fd >= 0:
            self._map.flush()
            self._map.close()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Journal(MappedFile):
    """The memory-mapped journal at ``path``, created if missing, locked while open."""

    def __init__(self, path: str | os.PathLike[str], *, initial_slots: int = INITIAL_SLOTS) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
            size = os.fstat(self._fd).st_size
            if size == 0:
                self._create(max(1, initial_slots))
            self._slots, identity = self._check_header()
            self.identity = identity if any(identity) else os.urandom(16)
            self._map = mmap.mmap(self._fd, self._file_size(self._slots), mmap.MAP_SHARED)
            self._write_header()
            self._index, self._counters = self._read_slots()
        except BaseException:
            os.close(self._fd)
            raise

    # ---- the CounterStore interface ---------------------------------------------------------

    def load(self) -> dict[str, Usage]:
        return dict(self._counters)

    def write(self, budget_id: str, counters: Usage) -> None:
        slot = self._index.get(budget_id)
        if slot is None:
            slot = self._allocate(budget_id)
        c = counters
        values = (c.seq, c.consumed, c.returned, c.reserved, c.released)
        crc = zlib.crc32(_VALUES.pack(*values))
        offset = _slot_offset(slot) + (_BLOCK_B if c.seq % 2 else _BLOCK_A)
        _BLOCK.pack_into(self._map, offset, *values, crc)
        self._counters[budget_id] = counters

    def intact(self) -> bool:
        """The open file is still the one at ``path`` (not deleted, not replaced): a restart would
        read what this journal writes."""
        try:
            on_disk, held = self.path.stat(), os.fstat(self._fd)
        except OSError:
            return False
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def slot(self, budget_id: str) -> int:
        """The budget's slot (a stable small number for as long as the journal lives), made if new."""
        slot = self._index.get(budget_id)
        return self._allocate(budget_id) if slot is None else slot

    def budgets_by_slot(self) -> dict[int, str]:
        return {slot: budget_id for budget_id, slot in self._index.items()}

    # ---- internals --------------------------------------------------------------------------

    def _lock(self) -> None:
        lock_exclusive(
            self._fd,
            lambda by: JournalLocked(
                f"journal {self.path} is in use by another agent{by}; each agent needs its own journal"
            ),
            _pid_in,
        )

    def _create(self, slots: int) -> None:
        os.ftruncate(self._fd, self._file_size(slots))
        header = _HEADER.pack(MAGIC, VERSION, SLOT_SIZE, slots, os.getpid(), os.urandom(16))
        os.pwrite(self._fd, header, 0)

    @staticmethod
    def _file_size(slots: int) -> int:
        return _HEADER.size + slots * SLOT_SIZE

    def _write_header(self) -> None:
        _HEADER.pack_into(self._map, 0, MAGIC, VERSION, SLOT_SIZE, self._slots, os.getpid(), self.identity)

    def _check_header(self) -> tuple[int, bytes]:
        size = os.fstat(self._fd).st_size
        raw = os.pread(self._fd, _HEADER.size, 0)
        if len(raw) < _HEADER.size or raw[:8] != MAGIC:
            raise JournalError(
                f"{self.path} is not a region agent journal (no journal header); refusing to use it"
            )
        _, version, slot_size, slots, _, identity = _HEADER.unpack(raw)
        if version != VERSION or slot_size != SLOT_SIZE:
            raise JournalError(
                f"journal {self.path} has format {version}/{slot_size}, this agent reads {VERSION}/{SLOT_SIZE}"
            )
        if slots < 1 or size < self._file_size(slots):
            raise JournalError(
                f"journal {self.path} is truncated: {size} bytes for {slots} slots; refusing to guess its counters"
            )
        return int(slots), bytes(identity)

    def _read_slots(self) -> tuple[dict[str, int], dict[str, Usage]]:
        index: dict[str, int] = {}
        counters: dict[str, Usage] = {}
        for slot in range(self._slots):
            base = _slot_offset(slot)
            length, raw_id = _SLOT_ID.unpack_from(self._map, base)
            if length == 0:
                continue
            if length > MAX_ID_BYTES:
                raise JournalError(f"journal {self.path} is damaged: slot {slot} has an id of {length} bytes")
            try:
                budget_id = raw_id[:length].decode("utf-8")
            except UnicodeDecodeError:
                raise JournalError(
                    f"journal {self.path} is damaged: slot {slot} has an undecodable id"
                ) from None
            if budget_id in index:
                raise JournalError(f"journal {self.path} is damaged: budget {budget_id} has two slots")
            best = _best_block(self._map, base)
            if best is None:
                raise JournalError(
                    f"journal {self.path} is damaged: no valid counters for budget {budget_id} (slot {slot})"
                )
            index[budget_id] = slot
            counters[budget_id] = best
        return index, counters

    def _allocate(self, budget_id: str) -> int:
        raw = budget_id.encode("utf-8")
        if not 0 < len(raw) <= MAX_ID_BYTES:
            raise JournalError(f"budget id of {len(raw)} bytes does not fit a journal slot")
        slot = len(self._index)
        if slot >= self._slots:
            self._grow(self._slots * 2)
        base = _slot_offset(slot)
        # Zero counters first, the id length last: a slot is in use only once it is complete.
        zero = (0, 0, 0, 0, 0)
        _BLOCK.pack_into(self._map, base + _BLOCK_A, *zero, zlib.crc32(_VALUES.pack(*zero)))
        _SLOT_ID.pack_into(self._map, base, 0, raw)
        struct.pack_into("<H", self._map, base, len(raw))
        self._index[budget_id] = slot
        return slot

    def _grow(self, slots: int) -> None:
        # Rare (slots double), so the system calls of a remap are fine here.
        self._map.flush()
        os.ftruncate(self._fd, self._file_size(slots))
        self._map.close()
        self._map = mmap.mmap(self._fd, self._file_size(slots), mmap.MAP_SHARED)
        self._slots = slots
        self._write_header()


def _slot_offset(slot: int) -> int:
    return _HEADER.size + slot * SLOT_SIZE


def _best_block(buf: mmap.mmap, base: int) -> Usage | None:
    best: Usage | None = None
    for offset in (_BLOCK_A, _BLOCK_B):
        *values, crc = _BLOCK.unpack_from(buf, base + offset)
        if zlib.crc32(_VALUES.pack(*values)) != crc:
            continue
        seq, consumed, returned, reserved, released = values
        if best is None or seq > best.seq:
            best = Usage(seq, consumed, returned, reserved, released)
    return best


def lock_exclusive(fd: int, locked: Callable[[str], Exception], pid_in: Callable[[int], int]) -> None:
    """Lock ``fd`` for this process alone, or raise ``locked(" (pid N)")`` naming the holder.

    The journal and the record log are each one agent's: a second process on either would
    count or answer twice.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = pid_in(fd)
        raise locked(f" (pid {holder})" if holder else "") from None


def _pid_in(fd: int) -> int:
    raw = os.pread(fd, _HEADER.size, 0)
    if len(raw) < _HEADER.size or raw[:8] != MAGIC:
        return 0
    return int(_HEADER.unpack(raw)[4])
