"""The agent session stream (proto ``quota.v1.AgentSession``), see docs/agents.md.

The first message must be a Hello. Every later message is handled in a task of its own: reports
are cumulative, so their order does not matter, and a reclaim answer must not wait behind a
grant that waits for the budget lock held by the request that ordered the reclaim.
A message that cannot be handled (unknown budget, bad input, a report that breaks a rule of
``quota_rules.usage.check_usage`` or of the holding, bytes that are not a message, Redis or
PostgreSQL down) is answered with a SessionError naming it and changes nothing; the stream stays
open and its other messages (the other reports of a heartbeat or Hello too) get their answers.

A stream ends with a status that says why: ALREADY_EXISTS for a second session of a live agent
id, RESOURCE_EXHAUSTED for one that left too many answers unread (``agents.sessions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import grpc

from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from quota.v1 import session_pb2_grpc
from quota_center.agents.holdings import AgentHoldings, HoldingView
from quota_center.agents.sessions import AlreadyConnected, Sessions
from quota_center.agents.sessions import Session as Stream
from quota_center.api.convert import _MODES, _STATES
from quota_center.api.errors import Context, status_for
from quota_center.metrics import AGENT_REPORTS_REFUSED, AGENT_SESSION_ENDS
from quota_rules.access import may_be_agent
from quota_rules.decoding import Malformed
from quota_rules.guard import current_caller
from quota_rules.limits import MAX_AMOUNT, InvalidInput, check_agent_id, check_budget_id
from quota_rules.results import result_code
from quota_rules.usage import Usage, check_usage, usage_from_pb, usage_pb

log = logging.getLogger(__name__)
T = TypeVar("T")

_ENDINGS: set[asyncio.Task[None]] = set()  # streams being ended from outside (kept referenced)

# Messages of one stream handled at once; more wait (the stream's flow control pushes back).
MAX_IN_FLIGHT = 64


class AgentSessionServicer(session_pb2_grpc.AgentSessionServicer):
    def __init__(self, holdings: AgentHoldings, sessions: Sessions, *, heartbeat_ms: int) -> None:
        self.holdings = holdings
        self.sessions = sessions
        self.heartbeat_ms = heartbeat_ms

    async def Session(  # grpc.aio serves a stream from an async generator function only
        self, request_iterator: AsyncIterator[spb.AgentMessage | Malformed], context: Context
    ) -> AsyncIterator[spb.CenterMessage]:
        async for message in self._serve(request_iterator, context):
            yield message

    async def _serve(
        self, requests: AsyncIterator[spb.AgentMessage | Malformed], context: Context
    ) -> AsyncIterator[spb.CenterMessage]:
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        if isinstance(first, Malformed) or first.WhichOneof("body") != "hello":
            async for refused in _refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "the first message of a session must be a Hello"
            ):
                yield refused
            return
        hello = first.hello
        refusal = may_be_agent(current_caller(), hello.agent_id)
        if refusal is not None:  # before attach: a refused claim never disturbs the live session
            async for refused in _refuse(context, grpc.StatusCode.PERMISSION_DENIED, refusal):
                yield refused
            return
        try:
            agent_id = check_agent_id(hello.agent_id)
            session = self.sessions.attach(agent_id)
        except (InvalidInput, AlreadyConnected) as exc:
            code = (
                grpc.StatusCode.INVALID_ARGUMENT
                if isinstance(exc, InvalidInput)
                else grpc.StatusCode.ALREADY_EXISTS
            )
            async for refused in _refuse(context, code, str(exc)):
                yield refused
            return
        log.info("agent %s (%s) connected", agent_id, hello.region)
        session.on_overflow = functools.partial(
            _end_stuck, context, asyncio.current_task(), session.max_unread
        )
        try:
            welcome = spb.Welcome(
                session_id=uuid.uuid4().hex, lease_ms=self.holdings.lease_ms, heartbeat_ms=self.heartbeat_ms
            )
            for u in hello.usage:
                view = await self._guard(session, self._report(u, session, renew=True))
                if view is not None:
                    welcome.holdings.append(holding_pb(view))
            yield spb.CenterMessage(welcome=welcome)
            reader = asyncio.create_task(self._read(requests, session))
            try:
                while (message := await session.outbox.get()) is not None:
                    yield message
            finally:
                reader.cancel()
        finally:
            self.sessions.detach(session)
            log.info("agent %s disconnected", agent_id)

    async def _read(self, requests: AsyncIterator[spb.AgentMessage | Malformed], session: Stream) -> None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for message in requests:
                session.seen()
                if isinstance(message, Malformed):
                    session.send(_error(f"INVALID_ARGUMENT: not a session message: {message.error}"))
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._handle(message, session))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: slots.release())
        except Exception as exc:  # the stream broke: the agent reconnects
            log.info("agent %s: stream ended: %s", session.agent_id, exc)
        finally:
            session.close()

    async def _handle(self, message: spb.AgentMessage, session: Stream) -> None:
        kind = message.WhichOneof("body")
        if kind == "heartbeat":
            renewal = spb.LeaseRenewal(sent_at_ms=message.heartbeat.sent_at_ms)
            for u in message.heartbeat.usage:
                view = await self._guard(session, self._report(u, session, renew=True))
                if view is not None:
                    renewal.holdings.append(holding_pb(view))
            session.send(spb.CenterMessage(lease=renewal))
        elif kind == "slice_request":
            await self._guard(session, self._grant(message.slice_request, session))
        elif kind == "usage":
            view = await self._guard(session, self._report(message.usage, session, renew=False))
            if view is not None:
                session.send(spb.CenterMessage(holding=holding_pb(view)))
        elif kind == "reclaim_answer":
            a = message.reclaim_answer
            view = await self._guard(
                session, self._report(a.usage, session, renew=False, budget_id=a.budget_id)
            )
            self.sessions.answered(session, a.order_id, a.released)
            if view is not None:
                session.send(spb.CenterMessage(holding=holding_pb(view)))
        elif kind == "record_answer":
            self.sessions.record_answered(session, message.record_answer)
        else:
            session.send(_error(f"unexpected message {kind!r} in a session"))

    async def _report(
        self, u: spb.Usage, session: Stream, *, renew: bool, budget_id: str | None = None
    ) -> HoldingView:
        """Apply one usage report, checked first (nothing changes for a refused one)."""
        budget_id = budget_id or u.budget_id
        check_budget_id(budget_id)
        return await self.holdings.report(
            budget_id, session.agent_id, _usage(u, budget_id), renew=renew, available=_available(u)
        )

    async def _grant(self, r: spb.SliceRequest, session: Stream) -> None:
        check_budget_id(r.budget_id)
        g = await self.holdings.grant(
            r.budget_id,
            session.agent_id,
            _usage(r.usage, r.budget_id),
            need=r.needed,
            rate=float(r.observed_rate),
            available=_available(r.usage),
        )
        session.send(
            spb.CenterMessage(
                grant=spb.Grant(
                    budget_id=r.budget_id,
                    request_id=r.request_id,
                    transfer_id=g.transfer_id,
                    amount=g.amount,
                    code=result_code(g.code),
                    message=g.message,
                    holding=holding_pb(g.holding),
                )
            )
        )

    async def _guard(self, session: Stream, work: Awaitable[T]) -> T | None:
        """Run ``work``; an error is answered with a SessionError and None is returned."""
        try:
            return await work
        except Exception as exc:
            status = status_for(exc)
            if status is None:
                log.exception("agent %s: session message failed", session.agent_id)
                session.send(_error(f"internal error: {type(exc).__name__}"))
            else:
                session.send(_error(f"{status[0].name}: {status[1]}"))
            return None


def holding_pb(view: HoldingView) -> spb.AgentHolding:
    return spb.AgentHolding(
        budget_id=view.budget_id,
        version=view.version,
        balance=view.balance,
        applied=usage_pb(view.budget_id, view.applied),
        lease_ms=view.lease_ms,
        mode=_MODES[view.mode],
        state=_STATES.get(view.state, pb.BUDGET_STATE_UNSPECIFIED),
        lost=view.lost,
        availability=spb.Availability(
            budget_id=view.budget_id, sold_out=view.sold_out, version=view.availability
        ),
    )


def _available(u: spb.Usage) -> int | None:
    """What the agent says it may still spend (None from an agent that does not say)."""
    if not u.HasField("available"):
        return None
    if not 0 <= u.available <= MAX_AMOUNT:
        AGENT_REPORTS_REFUSED.labels("invalid").inc()
        raise InvalidInput(f"available must be within 0..{MAX_AMOUNT}, got {u.available}")
    return u.available


def _usage(u: spb.Usage, budget_id: str) -> Usage:
    """The report ``u`` about ``budget_id``, checked alone (InvalidInput, counted, if it breaks a rule)."""
    try:
        if u.budget_id and u.budget_id != budget_id:
            raise InvalidInput(f"usage of budget {u.budget_id!r} in a message about {budget_id!r}")
        return check_usage(budget_id, usage_from_pb(u))
    except InvalidInput:
        AGENT_REPORTS_REFUSED.labels("invalid").inc()
        raise


def _end_stuck(context: Context, rpc: asyncio.Task[object] | None, max_unread: int) -> None:
    """End a stream whose answers are not read: its status says why, sent from a task of its own
    (the stream's writer waits on a write that flow control holds back)."""

    async def abort() -> None:
        with contextlib.suppress(Exception):
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"session closed: {max_unread} answers were left unread"
            )

    _ENDINGS.add(task := asyncio.get_running_loop().create_task(abort()))
    task.add_done_callback(_ENDINGS.discard)


async def _refuse(context: Context, code: grpc.StatusCode, message: str) -> AsyncIterator[spb.CenterMessage]:
    """End a stream before it began: said twice, as a SessionError (which an agent reads like any
    other) and as the status."""
    AGENT_SESSION_ENDS.labels("refused").inc()
    yield _error(message)
    await context.abort(code, message)


def _error(message: str) -> spb.CenterMessage:
    return spb.CenterMessage(error=spb.SessionError(message=message))
