"""Forwarded deductions sent to the center together, as ``DeductBatch`` calls.

In the end game (the budget in CENTRAL mode, or slices shorter than the requests) every
deduction an agent gets is decided by the center, and each forwarded as its own ``Deduct`` costs
the center a whole RPC for one Lua call. Here the forwards queue while a call is in flight and
leave together: the center answers a batch with one pipeline of deduct.lua calls (one Redis round
trip, one spend-log write), so its cost per deduction falls with the load, and a forward never
waits for a timer: with nothing in flight it leaves at once, alone, as a plain ``Deduct``.

Each request keeps its own id and its own answer; a batch changes how they travel, not what they
do. A request whose id is already queued goes on its own (a batch holds an id once). When the
center refuses the batch as a whole (an item it finds invalid, a budget it does not know), each
item goes again on its own, so one item's error is that item's answer only. An item the center
did not start before the deadline (UNSETTLED, nothing done) is ``CenterUnavailable`` for its
caller, as a single forward that timed out would be: a retry is forwarded again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from quota.v1 import common_pb2 as pb
from region_agent.forward import CenterClient, CenterRefused, CenterUnavailable

# Items in one DeductBatch call (the center takes up to quota_rules.limits.MAX_BATCH); calls in
# flight at once (more queue behind them, so a slow call does not hold the rest).
MAX_ITEMS = 500
IN_FLIGHT = 2

_Waiter = tuple[pb.DeductRequest, "asyncio.Future[pb.DeductResponse]"]


class Coalescer:
    def __init__(
        self,
        center: CenterClient,
        *,
        max_items: int = MAX_ITEMS,
        in_flight: int = IN_FLIGHT,
        counted: Callable[[str], object] = lambda how: None,
    ) -> None:
        self.center = center
        self.counted = counted  # told "alone" or "batch" for each call made
        self.max_items = max_items
        self.in_flight = in_flight
        self._queue: list[_Waiter] = []
        self._queued: set[str] = set()
        self._sending = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def deduct(self, request: pb.DeductRequest) -> pb.DeductResponse:
        """The center's answer to ``request``, sent alone or with others forwarded meanwhile."""
        if request.request_id in self._queued:
            self.counted("alone")
            return await self.center.deduct(request)
        future: asyncio.Future[pb.DeductResponse] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._queued.add(request.request_id)
        if self._sending < self.in_flight:
            self._sending += 1
            task = asyncio.create_task(self._send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                waiters = self._queue[: self.max_items]
                del self._queue[: self.max_items]
                for request, _ in waiters:
                    self._queued.discard(request.request_id)
                if len(waiters) == 1:
                    self.counted("alone")
                    await _alone(self.center, *waiters[0])
                else:
                    await self._together(waiters)
        finally:
            self._sending -= 1

    async def _together(self, waiters: list[_Waiter]) -> None:
        self.counted("batch")
        try:
            answered = await self.center.deduct_batch(pb.DeductBatchRequest(items=[r for r, _ in waiters]))
        except CenterRefused:
            # Refused as a whole: each item's own answer (or error) comes from a call of its own.
            for _ in waiters:
                self.counted("alone")
            await asyncio.gather(*(_alone(self.center, r, f) for r, f in waiters))
            return
        except CenterUnavailable as exc:
            for _, future in waiters:
                _fail(future, CenterUnavailable(str(exc)))
            return
        for (request, future), result in zip(waiters, answered.results, strict=True):
            if result.code == pb.RESULT_CODE_UNSETTLED:
                _fail(
                    future,
                    CenterUnavailable(
                        f"the center did not get to request {request.request_id} before the deadline"
                        f" (nothing done): {result.message}"
                    ),
                )
            elif not future.done():
                future.set_result(result)


async def _alone(
    center: CenterClient, request: pb.DeductRequest, future: asyncio.Future[pb.DeductResponse]
) -> None:
    try:
        response = await center.deduct(request)
    except Exception as exc:  # the caller gets it as it would from its own call
        _fail(future, exc)
    else:
        if not future.done():
            future.set_result(response)


def _fail(future: asyncio.Future[pb.DeductResponse], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
