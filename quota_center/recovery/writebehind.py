"""The write-behind spend log: what each sub-bucket served, written to PostgreSQL soon after.

See docs/center.md#spend-log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from quota_center.buckets.store import Outcome
from quota_center.errors import Unavailable
from quota_center.holders import sub_holder
from quota_center.ledger.errors import LedgerError
from quota_center.ledger.spend_log import SpendEntry, check_entry

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF_S = 2.0

EntryFor = Callable[[Outcome], SpendEntry | None]


class LogStore(Protocol):
    """What the log needs of PostgreSQL (LedgerStore has it)."""

    async def register_instance(self, instance_id: str, name: str) -> None: ...

    async def log_spends(self, entries: list[SpendEntry]) -> datetime: ...

    async def db_now(self) -> datetime: ...

    async def instance_heartbeat(self, instance_id: str, flushed_until: datetime) -> None: ...

    async def stop_instance(self, instance_id: str) -> None: ...


class SpendLog(Protocol):
    """What spending needs: run a Redis call and log its effect (WriteBehind, or Unlogged)."""

    async def call(self, work: Coroutine[Any, Any, Outcome], entry_for: EntryFor) -> Outcome: ...

    async def call_many(
        self, work: Coroutine[Any, Any, list[Outcome | None]], entries_for: Sequence[EntryFor]
    ) -> list[Outcome | None]: ...


class Unlogged:
    """Logs nothing: for parts of the center built by hand (tools, tests)."""

    async def call(self, work: Coroutine[Any, Any, Outcome], entry_for: EntryFor) -> Outcome:
        return await work

    async def call_many(
        self, work: Coroutine[Any, Any, list[Outcome | None]], entries_for: Sequence[EntryFor]
    ) -> list[Outcome | None]:
        return await work


def deduct_entry(budget_id: str, index: int, request_id: str) -> EntryFor:
    """The entry of a deduction served (or found served) by sub-bucket ``index``, or by the pool
    (sub-bucket 0) when the script went on to it (``pooled``, docs/center.md#end-game)."""

    def entry(r: Outcome) -> SpendEntry | None:
        if r.status not in ("OK", "EXISTS") or r.gen <= 0:
            return None
        holder = sub_holder(0 if r.pooled else index)
        return SpendEntry(request_id, budget_id, r.gen, holder, "deduct", r.value)

    return entry


def refund_entry(budget_id: str, index: int, request_id: str, deduction_id: str) -> EntryFor:
    """The entry of a return served (or found served) by sub-bucket ``index``."""

    def entry(r: Outcome) -> SpendEntry | None:
        if r.status not in ("OK", "EXISTS") or r.gen <= 0:
            return None
        return SpendEntry(request_id, budget_id, r.gen, sub_holder(index), "return", r.value, deduction_id)

    return entry


def cancel_entry(budget_id: str, index: int, reservation_id: str, gen: int) -> EntryFor:
    """The entry of a reservation cancelled (or found cancelled) by sub-bucket ``index``: it
    consumes nothing, but its retry after a Redis loss is answered from it."""

    def entry(r: Outcome) -> SpendEntry | None:
        if r.status not in ("OK", "EXISTS") or r.value <= 0:
            return None
        return SpendEntry(reservation_id, budget_id, gen, sub_holder(index), "cancel", r.value)

    return entry


class Op:
    """One operation in flight; ``record`` queues its entry once Redis has answered."""

    def __init__(self, log: WriteBehind) -> None:
        self._log = log

    def record(self, entry: SpendEntry) -> None:
        self._log._record(entry)


class WriteBehind:
    def __init__(
        self,
        store: LogStore,
        *,
        interval_ms: float = 50,
        batch: int = 1000,
        heartbeat_ms: float = 200,
        lease_ms: float = 30_000,
        name: str = "",
    ) -> None:
        self.store = store
        self.instance_id = uuid.uuid4().hex
        self.name = name
        self._interval = interval_ms / 1000
        self._batch = max(1, batch)
        self._heartbeat = heartbeat_ms / 1000
        self._lease = lease_ms / 1000
        self._queue: deque[SpendEntry] = deque()
        self._ops: dict[int, float] = {}  # operation -> its start, monotonic
        self._op_ids = itertools.count()
        self._recorded = 0  # entries ever queued
        self._written = 0  # entries ever written: the queue is FIFO, so the first `_written` ones
        self._watermark = -math.inf  # every operation started before it is finished and written
        self._lease_from = -math.inf
        self._waiters: list[tuple[bool, float, asyncio.Future[None]]] = []  # (watermark?, target, future)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set when the last operation in flight ends
        self._urgent = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[Any]] = set()
        self.failures = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def lag_s(self) -> float:
        """How far the durable watermark trails now, in seconds."""
        return time.monotonic() - self._watermark

    @property
    def lease_lapsed(self) -> bool:
        """The log has not reached PostgreSQL for longer than the lease: spending is refused."""
        return time.monotonic() - self._lease_from > self._lease

    async def start(self) -> None:
        """Register this center and start the flusher. No operation may start before this."""
        sent = time.monotonic()
        await self.store.register_instance(self.instance_id, self.name)
        self._lease_from = self._watermark = sent
        self._task = asyncio.create_task(self._run(), name="spend-log")

    # -- the request path --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def op(self) -> AsyncIterator[Op]:
        """Track one operation around its Redis call; ``record`` its entry if it had an effect.

        Raises Unavailable, before anything happens, when the center is stopping or its log has
        not reached PostgreSQL for longer than the lease.
        """
        self._check_lease()
        async with self._tracked() as op:
            yield op

    async def call(self, work: Coroutine[Any, Any, Outcome], entry_for: EntryFor) -> Outcome:
        """Run ``work`` as one operation and queue ``entry_for(result)``.

        The work runs in a task of its own, so a caller that is cancelled (a client deadline)
        cannot leave an effect unlogged: the task finishes and records it regardless.
        """
        return await self._shielded(work, self._logged(work, entry_for))

    async def call_many(
        self, work: Coroutine[Any, Any, list[Outcome | None]], entries_for: Sequence[EntryFor]
    ) -> list[Outcome | None]:
        """``call`` for work with several outcomes (a pipeline): ``entries_for[i]`` makes the entry
        of outcome ``i``; a None outcome (a call that did nothing) logs nothing."""
        return await self._shielded(work, self._logged_many(work, entries_for))

    async def _shielded(self, work: Coroutine[Any, Any, Any], logged: Coroutine[Any, Any, T]) -> T:
        """Run ``logged`` (which runs ``work``) in a task of its own that a cancelled caller leaves running."""
        try:
            self._check_lease()
        except Unavailable:
            logged.close()
            work.close()
            raise
        task = asyncio.ensure_future(logged)
        self._calls.add(task)
        task.add_done_callback(self._call_done)
        return await asyncio.shield(task)

    async def _logged(self, work: Coroutine[Any, Any, Outcome], entry_for: EntryFor) -> Outcome:
        # ``_tracked`` written out: this runs once per deduction, and an async context manager
        # costs more than the bookkeeping it wraps.
        token = next(self._op_ids)
        self._ops[token] = time.monotonic()
        try:
            result = await work
            entry = entry_for(result)
            if entry is not None:
                self._record(entry)
            return result
        finally:
            del self._ops[token]
            if not self._ops:
                self._idle.set()

    async def _logged_many(
        self, work: Coroutine[Any, Any, list[Outcome | None]], entries_for: Sequence[EntryFor]
    ) -> list[Outcome | None]:
        async with self._tracked():
            results = await work
            for entry_for, result in zip(entries_for, results, strict=True):
                entry = None if result is None else entry_for(result)
                if entry is not None:
                    self._record(entry)
            return results

    def _call_done(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away must not leave it unread

    @contextlib.asynccontextmanager
    async def _tracked(self) -> AsyncIterator[Op]:
        token = next(self._op_ids)
        self._ops[token] = time.monotonic()
        try:
            yield Op(self)
        finally:
            del self._ops[token]
            if not self._ops:
                self._idle.set()

    def _check_lease(self) -> None:
        if self._closing or self._task is None:
            raise Unavailable("the center is not taking spending operations (starting or stopping)")
        silent = time.monotonic() - self._lease_from
        if silent > self._lease:
            raise Unavailable(
                f"the spend log has not reached PostgreSQL for {silent:.0f} s; not spending until it does"
            )

    def _record(self, entry: SpendEntry) -> None:
        try:
            check_entry(entry)
        except LedgerError:
            log.error("spend log entry cannot be stored, not logged: %s", entry)
            return
        self._queue.append(entry)
        self._recorded += 1
        if len(self._queue) >= self._batch:
            self._urgent = True
        if len(self._queue) == 1 or self._urgent:
            self._wake.set()

    # -- waiting for the log -----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every entry recorded before this call is written."""
        if self._written < self._recorded:
            await self._wait(False, self._recorded)

    async def flushed_past(self, t: float) -> None:
        """Wait until every operation started before monotonic time ``t`` has finished, its entry
        is written, and this center's ``flushed_until`` says so."""
        if self._watermark < t:
            await self._wait(True, t)

    async def _wait(self, watermark: bool, target: float) -> None:
        if self._task is None or self._task.done():
            raise Unavailable("the spend log is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((watermark, target, future))
        self._urgent = True
        self._wake.set()
        await future

    def _resolve(self, error: BaseException | None = None) -> None:
        waiting = []
        for watermark, target, future in self._waiters:
            reached = (self._watermark if watermark else self._written) >= target
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif reached:
                future.set_result(None)
            else:
                waiting.append((watermark, target, future))
        self._waiters = waiting

    # -- the flusher -------------------------------------------------------------------------

    async def _run(self) -> None:
        last = time.monotonic()
        backoff = 0.0
        while True:
            if not self._urgent:
                period = self._interval if self._queue else self._heartbeat
                delay = last + period - time.monotonic()
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue  # look again: new entries shorten the period, a waiter makes it urgent
            self._urgent = False
            last = time.monotonic()
            try:
                await self._cycle()
                backoff = 0.0
            except Exception as exc:
                self.failures += 1
                backoff = min(max(2 * backoff, self._interval, 0.01), MAX_BACKOFF_S)
                log.warning(
                    "spend log: %d entries not written yet (%s: %s); retrying in %.2f s",
                    len(self._queue),
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)

    async def _cycle(self) -> None:
        """Write what is queued, then move ``flushed_until`` forward."""
        start = time.monotonic()
        # Every operation that started before `mark` has finished, so its entry is among the
        # first `todo` of the queue: nothing awaits between these lines.
        mark = min([start, *self._ops.values()])
        todo = len(self._queue)
        now: datetime | None = None
        while todo:
            chunk = list(itertools.islice(self._queue, min(todo, self._batch)))
            now = await self.store.log_spends(chunk)
            for _ in chunk:
                self._queue.popleft()
            todo -= len(chunk)
            self._written += len(chunk)
        if now is None:
            now = await self.store.db_now()
        # `now` is no later than this arrival, so the instant below is no later than `mark`.
        arrived = time.monotonic()
        flushed_until = now - timedelta(seconds=arrived - mark)
        sent = time.monotonic()
        await self.store.instance_heartbeat(self.instance_id, flushed_until)
        self._lease_from = sent  # seen_at is no earlier than this send
        self._watermark = max(self._watermark, mark)
        self._resolve()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Refuse new operations, let those in flight finish, write everything, mark a clean stop.

        If that cannot be done within ``timeout_s`` (PostgreSQL down), the center is left
        registered as running: what it did not write stays in doubt until settled by hand.
        """
        if self._task is None:
            return
        self._closing = True
        try:
            async with asyncio.timeout(timeout_s):
                while self._ops:
                    self._idle.clear()
                    await self._idle.wait()
                await self.flushed_past(time.monotonic())
                await self.store.stop_instance(self.instance_id)
        except Exception as exc:
            log.error(
                "spend log: stopping without a clean flush (%s); %d entries unwritten, %d operations "
                "in flight. What they spent stays in doubt after a Redis loss until settled by hand.",
                type(exc).__name__,
                len(self._queue),
                len(self._ops),
            )
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._resolve(Unavailable("the spend log stopped"))
