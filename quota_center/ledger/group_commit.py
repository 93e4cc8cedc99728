"""Group commit: many concurrent ledger writes, one transaction per batch.

Callers enqueue a `LedgerEntry` and await a future. One background task takes up to `batch_max`
queued entries (or whatever arrived within `batch_wait_ms` of the oldest one), locks their budget
rows FOR SHARE to read each budget's generation, inserts the rows of known budgets and current
generations with a single `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`, classifies
the ids it could not insert with one SELECT, and commits. A failed batch fails every waiter with the same exception and
leaves nothing behind, because it was a single transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Final

import asyncpg

from .errors import BudgetNotFound, StoreClosed
from .models import CURRENT_GEN, MARKER_KINDS, LedgerEntry, RecordOutcome, entry_from_record

log = logging.getLogger(__name__)

# FOR SHARE, in id order: a rebuild's generation bump (FOR NO KEY UPDATE) waits for this batch and
# holds off the next ones, so no row of an old generation can commit after the bump.
_LOCK_BUDGETS: Final = """
SELECT budget_id, redis_gen FROM budgets
WHERE budget_id = ANY($1::text[])
ORDER BY budget_id
FOR SHARE
"""

_INSERT: Final = """
INSERT INTO ledger (budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason, gen)
SELECT u.budget_id, u.transfer_id, u.kind, u.from_holder, u.to_holder, u.amount, u.actor, u.reason, u.gen
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
            $8::text[], $9::integer[])
     WITH ORDINALITY AS u(budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason,
                          gen, ord)
ORDER BY u.ord
ON CONFLICT (transfer_id) DO NOTHING
RETURNING transfer_id
"""

_EXISTING: Final = """
SELECT budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason, gen
FROM ledger WHERE transfer_id = ANY($1::text[])
"""

# A whole batch that lost a deadlock or serialization race is safe to replay: it rolled back.
_RETRYABLE: Final = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
_ATTEMPTS: Final = 3


@dataclass(slots=True)
class _Pending:
    entry: LedgerEntry
    future: asyncio.Future[RecordOutcome]
    enqueued_at: float


def classify(entry: LedgerEntry, prior: LedgerEntry) -> RecordOutcome:
    """Outcome for `entry` when `prior` already holds its transfer id."""
    if prior.kind == "abort":
        return RecordOutcome.ABORTED
    if entry.same_movement(prior):
        return RecordOutcome.ALREADY_COMMITTED
    return RecordOutcome.CONFLICT


class GroupCommitter:
    def __init__(self, pool: Any, *, batch_max: int, batch_wait_ms: float) -> None:
        self._pool = pool
        self._batch_max = batch_max
        self._wait_s = batch_wait_ms / 1000.0
        self._queue: deque[_Pending] = deque()
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._in_flight: list[_Pending] = []
        self._task = asyncio.create_task(self._run(), name="ledger-group-commit")
        self.batches_written = 0
        self.rows_written = 0
        self.batches_failed = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, entry: LedgerEntry) -> RecordOutcome:
        if self._closing or self._task.done():
            raise StoreClosed("ledger store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RecordOutcome] = loop.create_future()
        self._queue.append(_Pending(entry, future, loop.time()))
        self._has_work.set()
        if len(self._queue) >= self._batch_max:
            self._full.set()
        return await future

    async def close(self) -> None:
        """Stop accepting entries, write everything already queued, then stop the task."""
        self._closing = True
        self._has_work.set()
        self._full.set()
        await self._task

    async def _run(self) -> None:
        try:
            while True:
                while not self._queue and not self._closing:
                    self._has_work.clear()
                    await self._has_work.wait()
                if not self._queue:
                    return  # closing and drained
                await self._gather_more()
                batch = self._take()
                if batch:
                    await self._flush(batch)
        finally:
            # Only reached by cancellation or a bug: never leave a caller waiting forever.
            stranded = self._in_flight + list(self._queue)
            self._queue.clear()
            for pending in stranded:
                if not pending.future.done():
                    pending.future.set_exception(StoreClosed("ledger writer stopped"))

    async def _gather_more(self) -> None:
        """Wait until the batch is full or its oldest entry has waited batch_wait_ms."""
        if self._closing or self._wait_s <= 0 or len(self._queue) >= self._batch_max:
            return
        self._full.clear()
        deadline = self._queue[0].enqueued_at + self._wait_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._full.wait()

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self._batch_max:
            pending = self._queue.popleft()
            # A caller cancelled before its batch started no longer waits: skip its row.
            if not pending.future.done():
                batch.append(pending)
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        self._in_flight = batch
        try:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    results = await self._write(batch)
                    break
                except _RETRYABLE:
                    if attempt == _ATTEMPTS:
                        raise
                    log.warning("ledger batch of %d rows lost a lock race; retrying", len(batch))
        except Exception as exc:
            self.batches_failed += 1
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            self._in_flight = []
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, RecordOutcome):
                pending.future.set_result(result)
            else:
                pending.future.set_exception(result)

    async def _write(self, batch: list[_Pending]) -> list[RecordOutcome | Exception]:
        # The first caller of an id in the batch is the one whose row may be inserted.
        first: dict[str, _Pending] = {}
        for pending in batch:
            first.setdefault(pending.entry.transfer_id, pending)
        budget_ids = sorted({p.entry.budget_id for p in batch})
        async with self._pool.acquire() as conn, conn.transaction():
            gens = {
                str(r["budget_id"]): int(r["redis_gen"]) for r in await conn.fetch(_LOCK_BUDGETS, budget_ids)
            }
            # Sorted ids give every batch the same lock order: concurrent writers cannot deadlock.
            rows = [
                _effective(first[tid].entry, gens)
                for tid in sorted(first)
                if _insertable(first[tid].entry, gens)
            ]
            inserted = (
                {str(r["transfer_id"]) for r in await conn.fetch(_INSERT, *_columns(rows))} if rows else set()
            )
            missing = [tid for tid in first if tid not in inserted]
            existing = (
                {str(r["transfer_id"]): entry_from_record(r) for r in await conn.fetch(_EXISTING, missing)}
                if missing
                else {}
            )
        self.batches_written += 1
        self.rows_written += len(inserted)

        results: list[RecordOutcome | Exception] = []
        for pending in batch:
            entry, tid = pending.entry, pending.entry.transfer_id
            if tid in inserted:
                if first[tid] is pending:
                    results.append(RecordOutcome.COMMITTED)
                else:
                    stored = _effective(first[tid].entry, gens)
                    results.append(classify(_effective(entry, gens), stored))
            elif tid in existing:
                results.append(classify(_effective(entry, gens), existing[tid]))
            elif entry.budget_id not in gens:
                results.append(BudgetNotFound(entry.budget_id))
            else:
                results.append(RecordOutcome.STALE)
        return results


def _insertable(entry: LedgerEntry, gens: dict[str, int]) -> bool:
    current = gens.get(entry.budget_id)
    if current is None:
        return False  # unknown budget: filtered here rather than failing the batch on the foreign key
    return entry.kind in MARKER_KINDS or entry.gen == current


def _effective(entry: LedgerEntry, gens: dict[str, int]) -> LedgerEntry:
    """The entry as it is stored: a marker's CURRENT_GEN becomes the budget's generation."""
    if entry.gen == CURRENT_GEN and entry.budget_id in gens:
        return replace(entry, gen=gens[entry.budget_id])
    return entry


def _columns(rows: list[LedgerEntry]) -> tuple[list[Any], ...]:
    return (
        [e.budget_id for e in rows],
        [e.transfer_id for e in rows],
        [e.kind for e in rows],
        [e.from_holder for e in rows],
        [e.to_holder for e in rows],
        [e.amount for e in rows],
        [e.actor for e in rows],
        [e.reason for e in rows],
        [e.gen for e in rows],
    )
