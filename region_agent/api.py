"""The spending API at the agent (proto ``quota.v1.Quota``): the slice first, the center otherwise.

The same RPCs, result codes and statuses as the center's (``quota_center.api.quota``): a
caller cannot tell whether its request was served from this agent's slice or forwarded. A
request the core cannot serve goes to the center with the same ids; the center's answer, if it
took effect, is remembered for retries here, and a budget first met this way is tracked, so
the session asks the center for a slice of it in the background.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from quota_rules.decoding import Malformed, failure_status
from quota_rules.limits import InvalidInput, check_batch_size, check_budget_id
from quota_rules.retries import is_retry
from region_agent.coalesce import Coalescer
from region_agent.convert import MODE_PB, STATE_PB, answer_of, code_name, code_value, wire_code
from region_agent.core.agent import Agent
from region_agent.core.records import Answer
from region_agent.core.serving import SLICE_HELPS, Forward
from region_agent.core.spending import Decided
from region_agent.core.waiting import Step
from region_agent.forward import CenterClient, CenterRefused, CenterUnavailable
from region_agent.metrics import Metrics

log = logging.getLogger(__name__)


Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Message)
T = TypeVar("T")
Handler = Callable[["QuotaServicer", Req, Context], Awaitable[Resp]]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message a caller gets for ``exc``; None for an unexpected error."""
    if isinstance(exc, InvalidInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, CenterUnavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, CenterRefused):
        return exc.code, exc.details
    return None


async def fail(
    servicer: QuotaServicer, method: str, exc: Exception, start: float, context: Context, request: object
) -> NoReturn:
    """Answer a call that raised: its status (INTERNAL, logged, for an unexpected error), counted."""
    mapped = failure_status(exc, method, status_for, log)
    servicer.metrics.observe(method, mapped[0].name, start, request)
    await context.abort(*mapped)
    raise AssertionError("context.abort returned")  # it raises; this keeps the type checker honest


def rpc(method: str) -> Callable[[Handler[Req, Resp]], Handler[Req, Resp]]:
    """Wrap a handler: map errors to statuses, count the call by result code, time it."""

    def wrap(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
        @functools.wraps(handler)
        async def run(self: QuotaServicer, request: Req, context: Context) -> Resp:
            start = time.perf_counter()
            try:
                if isinstance(request, Malformed):
                    raise InvalidInput(f"malformed {method} request: {request.error}")
                response = await handler(self, request, context)
            except Exception as exc:
                await fail(self, method, exc, start, context, request)
            code = getattr(response, "code", None)
            self.metrics.observe(method, "OK" if code is None else code_name(code), start, request)
            return response

        return run

    return wrap


# Forwards that go alone, not in a batch: a retry (the center checks who served it) and a budget
# not known here (which may not exist: the center would refuse the whole batch).
ALONE = frozenset({"retry", "unknown"})

# Budget ids kept as known to exist; the set starts afresh beyond this.
_MAX_KNOWN = 100_000


class QuotaServicer(quota_pb2_grpc.QuotaServicer):
    def __init__(
        self,
        agent: Agent,
        center: CenterClient,
        metrics: Metrics,
        clock: Callable[[], int],
        ask: Callable[[str, int], object] | None = None,
        *,
        ask_soon: Callable[[str, int], object] | None = None,
        wait: Callable[[str, float], Awaitable[bool]] | None = None,
        wait_s: float = 0.0,
    ) -> None:
        self.agent = agent
        self.center = center
        # Forwarded deductions leave together while a call is in flight (region_agent/coalesce.py).
        self.coalesce = Coalescer(center, counted=lambda how: metrics.forward_calls.labels(how).inc())
        self.metrics = metrics
        self.clock = clock
        # Budgets the center said exist (a budget is closed, never deleted), for DeductBatch.
        self._exist: set[str] = set()
        self.ask = ask  # sends a SliceRequest for (budget, needed); the session's request_slice
        # Asks for a slice unless one is in flight or the center lately had nothing to grant.
        self.ask_soon = ask_soon
        # Waits (budget, seconds) for the slice in flight for a budget; the session's slice_arrival.
        self.wait = wait if wait_s > 0 else None
        self.wait_s = wait_s
        self._first_contact: dict[str, asyncio.Event] = {}  # budget -> set when its first request returns

    async def _await_slice(self, budget_id: str, amount: int) -> None:
        """Wait, as long as the core says (``region_agent.core.waiting``), for a slice on its way."""
        assert self.wait is not None
        deadline = time.monotonic() + self.wait_s
        waited = 0
        while True:
            left = deadline - time.monotonic()
            step = self.agent.next_wait(
                budget_id,
                amount,
                self.clock(),
                left_s=left,
                slices_waited=waited,
                first_contact_open=budget_id in self._first_contact,
            )
            if step is Step.AWAIT_FIRST_CONTACT:
                try:
                    async with asyncio.timeout(left):
                        await self._first_contact[budget_id].wait()
                except TimeoutError:
                    return
            elif step is Step.AWAIT_SLICE:
                waited += 1
                if self.ask_soon is not None:
                    self.ask_soon(
                        budget_id, amount
                    )  # no-op if one is in flight, or the center said no lately
                if not await self.wait(budget_id, left):
                    return  # nothing on its way (or it did not come in time): the center decides
            else:
                if step is Step.FIRST_CONTACT:
                    self._first_contact[budget_id] = asyncio.Event()
                return

    def _first_contact_done(self, budget_id: str) -> None:
        event = self._first_contact.pop(budget_id, None)
        if event is not None:
            event.set()

    async def Deduct(self, request: pb.DeductRequest | Malformed, context: Context) -> pb.DeductResponse:
        # As ``rpc`` wraps the other handlers, written out: the hot path is one coroutine and one
        # synchronous decision, with no await when the slice covers the request.
        start = time.perf_counter()
        try:
            if isinstance(request, Malformed):
                raise InvalidInput(f"malformed Deduct request: {request.error}")
            budget_id, request_id, amount = request.budget_id, request.request_id, request.amount
            decided = self.agent.deduct(
                budget_id,
                request_id,
                amount,
                self.clock(),
                wait=self.wait is not None,
                retry=is_retry(context.invocation_metadata()),
            )
            if isinstance(decided, Answer):
                response = self._served("Deduct", budget_id, request_id, decided)
            else:
                response = await self._deduct_elsewhere(request, decided)
        except Exception as exc:
            await fail(self, "Deduct", exc, start, context, request)
        self.metrics.observe("Deduct", code_name(response.code), start, request)
        return response

    def _served(self, method: str, budget_id: str, request_id: str, answer: Answer) -> pb.DeductResponse:
        """The response to a deduction decided here, counted as served locally."""
        self.metrics.served_local(method)
        return pb.DeductResponse(
            code=code_value(answer.code),
            message=answer.message,
            budget_id=budget_id,
            request_id=request_id,
            amount=answer.amount,
        )

    async def _deduct_elsewhere(self, request: pb.DeductRequest, decided: Forward) -> pb.DeductResponse:
        """A deduction the slice did not serve: wait for a slice on its way if one could, else forward."""
        budget_id, request_id, amount = request.budget_id, request.request_id, request.amount
        if not decided.bound:
            await self._await_slice(budget_id, amount)
            again = self.agent.deduct(budget_id, request_id, amount, self.clock())
            if isinstance(again, Answer):
                return self._served("Deduct", budget_id, request_id, again)
            decided = again
        if decided.reason in ALONE:
            retry = decided.reason == "retry"
            call = lambda: self.center.deduct(request, retry=retry)  # noqa: E731
        else:
            call = lambda: self.coalesce.deduct(request)  # noqa: E731
        response = await self._forward("Deduct", decided, budget_id, amount, call)
        self.agent.remember(request_id, answer_of(response))
        return response

    @rpc("DeductBatch")
    async def DeductBatch(self, request: pb.DeductBatchRequest, context: Context) -> pb.DeductBatchResponse:
        check_batch_size(len(request.items))
        items = [(item.budget_id, item.request_id, item.amount) for item in request.items]
        self.agent.check_items(items)  # a bad batch is refused before any wait, and changes nothing
        await self._check_budgets_exist(items)  # as the center does: NOT_FOUND, and nothing done
        now = self.clock()
        retry = is_retry(context.invocation_metadata())
        if retry:
            # A retried batch: each item this agent does not know goes to the center, marked, as a
            # retried Deduct would (quota_rules/retries.py); retries are rare, one at a time is fine.
            decided = Decided([self.agent.deduct(b, r, a, now, retry=True) for b, r, a in items])
        else:
            decided = self.agent.deduct_many(items, now, checked=True, wait=self.wait is not None)
        answers = decided.answers
        if decided.waiting:
            # Budgets whose slice is on its way: wait for them (bounded), then decide their items.
            for budget_id, amount in decided.waiting.items():
                await self._await_slice(budget_id, amount)
            later = [i for i, answer in enumerate(answers) if answer is None]
            now = self.clock()
            again = self.agent.deduct_many([items[i] for i in later], now, checked=True)
            for i, answer in zip(later, again.answers, strict=True):
                answers[i] = answer
        response = pb.DeductBatchResponse()
        add = response.results.add
        forwarded: list[int] = []
        ok = code_value("OK")
        for (budget_id, request_id, _), d in zip(items, answers, strict=True):
            if type(d) is Answer and d.code == "OK":  # the common case, without the lookups
                add(code=ok, budget_id=budget_id, request_id=request_id, amount=d.amount)
            elif isinstance(d, Answer):
                add(
                    code=code_value(d.code),
                    message=d.message,
                    budget_id=budget_id,
                    request_id=request_id,
                    amount=d.amount,
                )
            else:
                forwarded.append(len(response.results))
                add()  # its place, filled with the center's answer below
        self.metrics.served_local("DeductBatch", len(items) - len(forwarded))
        if forwarded:
            batch = pb.DeductBatchRequest(items=[request.items[i] for i in forwarded])
            try:
                answered = await self.center.deduct_batch(batch, retry=retry)
            except CenterUnavailable as exc:
                raise CenterUnavailable(
                    f"{exc}; {len(items) - len(forwarded)} of the batch's items were served here"
                    " (a retry with the same request ids gets their answers)"
                ) from None
            for i, theirs in zip(forwarded, answered.results, strict=True):
                budget_id, request_id, amount = items[i]
                why = answers[i]
                assert isinstance(why, Forward)
                self._forwarded("DeductBatch", why, budget_id, amount, now)
                self.agent.remember(request_id, answer_of(theirs))
                response.results[i].CopyFrom(theirs)
        return response

    @rpc("Return")
    async def Return(self, request: pb.ReturnRequest, context: Context) -> pb.ReturnResponse:
        decided = self.agent.return_(
            request.budget_id, request.request_id, request.deduction_id, request.amount, self.clock()
        )
        if isinstance(decided, Answer):
            self.metrics.served_local("Return")
            return pb.ReturnResponse(
                code=wire_code(decided.code),
                message=decided.message,
                budget_id=request.budget_id,
                request_id=request.request_id,
                deduction_id=request.deduction_id,
                amount=decided.amount,
                refundable=decided.refundable,
            )
        response = await self._forward(
            "Return", decided, request.budget_id, 0, lambda: self.center.return_(request)
        )
        self.agent.remember(request.request_id, answer_of(response))
        return response

    @rpc("Reserve")
    async def Reserve(self, request: pb.ReserveRequest, context: Context) -> pb.ReserveResponse:
        decided = self.agent.reserve(
            request.budget_id, request.request_id, request.amount, request.ttl_ms, self.clock()
        )
        if isinstance(decided, Answer):
            self.metrics.served_local("Reserve")
            return pb.ReserveResponse(
                code=wire_code(decided.code),
                message=decided.message,
                budget_id=request.budget_id,
                request_id=request.request_id,
                amount=decided.amount,
                expires_at_ms=decided.expires_at_ms,
            )
        response = await self._forward(
            "Reserve", decided, request.budget_id, request.amount, lambda: self.center.reserve(request)
        )
        self.agent.remember(request.request_id, answer_of(response))
        return response

    @rpc("Confirm")
    async def Confirm(self, request: pb.ConfirmRequest, context: Context) -> pb.ConfirmResponse:
        decided = self.agent.confirm(request.budget_id, request.reservation_id, request.amount, self.clock())
        if isinstance(decided, Answer):
            self.metrics.served_local("Confirm")
            return pb.ConfirmResponse(
                code=wire_code(decided.code),
                message=decided.message,
                budget_id=request.budget_id,
                reservation_id=request.reservation_id,
                amount=decided.amount,
                released=decided.released,
            )
        return await self._forward(
            "Confirm", decided, request.budget_id, 0, lambda: self.center.confirm(request)
        )

    @rpc("Cancel")
    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.CancelResponse:
        decided = self.agent.cancel(request.budget_id, request.reservation_id, self.clock())
        if isinstance(decided, Answer):
            self.metrics.served_local("Cancel")
            return pb.CancelResponse(
                code=wire_code(decided.code),
                message=decided.message,
                budget_id=request.budget_id,
                reservation_id=request.reservation_id,
                released=decided.released,
            )
        return await self._forward(
            "Cancel", decided, request.budget_id, 0, lambda: self.center.cancel(request)
        )

    @rpc("GetBalance")
    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        """The center's numbers with ``held_here`` = this agent's available; local ones if it is down."""
        check_budget_id(request.budget_id)
        held = self.agent.available(request.budget_id)
        try:
            response = await self.center.balance(request)
        except CenterUnavailable:
            s = self.agent.get(request.budget_id)
            if s is None or s.holding is None:
                raise
            # Only what this agent can vouch for: its own slice. Total and consumed are the center's.
            return pb.GetBalanceResponse(
                budget_id=request.budget_id,
                state=STATE_PB[s.holding.state],
                mode=MODE_PB[s.holding.mode],
                available=held,
                reserved=s.counters.reserved,
                held_here=held,
            )
        response.held_here = held
        return response

    async def _check_budgets_exist(self, items: list[tuple[str, str, int]]) -> None:
        """NOT_FOUND (CenterRefused) before anything is served if a budget of ``items`` does not
        exist: the center refuses such a batch whole, so the items served here must not be
        applied either. A budget this agent holds exists; another is asked about once."""
        asked: set[str] = set()
        for i, (budget_id, _, _) in enumerate(items):
            if budget_id in asked or budget_id in self._exist:
                continue
            s = self.agent.get(budget_id)
            if s is not None and s.holding is not None:
                continue
            asked.add(budget_id)
            try:
                await self.center.balance(pb.GetBalanceRequest(budget_id=budget_id))
            except CenterRefused as exc:
                raise CenterRefused(exc.code, f"items[{i}]: {exc.details}") from None
            if len(self._exist) >= _MAX_KNOWN:
                self._exist.clear()
            self._exist.add(budget_id)

    async def _forward(
        self, method: str, why: Forward, budget_id: str, amount: int, call: Callable[[], Awaitable[T]]
    ) -> T:
        now = self.clock()
        try:
            response = await call()
            self._forwarded(method, why, budget_id, amount, now)
        finally:
            if why.reason == "unknown":
                self._first_contact_done(budget_id)
        return response

    def _forwarded(self, method: str, why: Forward, budget_id: str, amount: int, now: int) -> None:
        """Count a forwarded request the center answered, and learn the budget from it."""
        self.metrics.served_forwarded(method)
        self.metrics.forwarded.labels(why.reason).inc()
        if why.reason in SLICE_HELPS and amount > 0:
            # The center answered with a result code, so the budget exists: hold a slice of it.
            self.agent.track(budget_id, now, amount)
            if self.ask is not None:
                self.ask(budget_id, amount)
