"""The agent session stream (proto ``quota.v1.AgentSession``), see docs/agents.md.

The first message must be a Hello. Every later message is handled in a task of its own: reports
are cumulative, so their order does not matter, and a reclaim answer must not wait behind a
grant that waits for the budget lock held by the request that ordered the reclaim.
A message that cannot be handled (unknown budget, bad input, Redis or PostgreSQL down) is
answered with a SessionError naming it; the stream stays open.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from quota.v1 import session_pb2_grpc
from quota_center.agents.holdings import AgentHoldings, HoldingView
from quota_center.agents.sessions import Session as Stream
from quota_center.agents.sessions import Sessions
from quota_center.api.convert import _MODES, _STATES
from quota_center.api.errors import Context, status_for
from quota_rules.limits import InvalidInput, check_agent_id, check_budget_id
from quota_rules.results import result_code
from quota_rules.usage import Usage, usage_from_pb, usage_pb

log = logging.getLogger(__name__)
T = TypeVar("T")

# Messages of one stream handled at once; more wait (the stream's flow control pushes back).
MAX_IN_FLIGHT = 64


class AgentSessionServicer(session_pb2_grpc.AgentSessionServicer):
    def __init__(self, holdings: AgentHoldings, sessions: Sessions, *, heartbeat_ms: int) -> None:
        self.holdings = holdings
        self.sessions = sessions
        self.heartbeat_ms = heartbeat_ms

    async def Session(  # grpc.aio serves a stream from an async generator function only
        self, request_iterator: AsyncIterator[spb.AgentMessage], context: Context
    ) -> AsyncIterator[spb.CenterMessage]:
        async for message in self._serve(request_iterator):
            yield message

    async def _serve(self, requests: AsyncIterator[spb.AgentMessage]) -> AsyncIterator[spb.CenterMessage]:
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        if first.WhichOneof("body") != "hello":
            yield _error("the first message of a session must be a Hello")
            return
        try:
            agent_id = check_agent_id(first.hello.agent_id)
        except InvalidInput as exc:
            yield _error(str(exc))
            return
        session = self.sessions.attach(agent_id)
        log.info("agent %s (%s) connected", agent_id, first.hello.region)
        try:
            welcome = spb.Welcome(
                session_id=uuid.uuid4().hex, lease_ms=self.holdings.lease_ms, heartbeat_ms=self.heartbeat_ms
            )
            for u in first.hello.usage:
                view = await self._guard(
                    session, self.holdings.report(u.budget_id, agent_id, _usage(u), renew=True)
                )
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

    async def _read(self, requests: AsyncIterator[spb.AgentMessage], session: Stream) -> None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for message in requests:
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
        agent_id = session.agent_id
        kind = message.WhichOneof("body")
        if kind == "heartbeat":
            renewal = spb.LeaseRenewal(sent_at_ms=message.heartbeat.sent_at_ms)
            for u in message.heartbeat.usage:
                view = await self._guard(
                    session, self.holdings.report(u.budget_id, agent_id, _usage(u), renew=True)
                )
                if view is not None:
                    renewal.holdings.append(holding_pb(view))
            session.send(spb.CenterMessage(lease=renewal))
        elif kind == "slice_request":
            await self._guard(session, self._grant(message.slice_request, session))
        elif kind == "usage":
            u = message.usage
            view = await self._guard(
                session, self.holdings.report(u.budget_id, agent_id, _usage(u), renew=False)
            )
            if view is not None:
                session.send(spb.CenterMessage(holding=holding_pb(view)))
        elif kind == "reclaim_answer":
            a = message.reclaim_answer
            view = await self._guard(
                session,
                self.holdings.report(a.budget_id, agent_id, _usage(a.usage, a.budget_id), renew=False),
            )
            self.sessions.answered(session, a.order_id, a.released)
            if view is not None:
                session.send(spb.CenterMessage(holding=holding_pb(view)))
        else:
            session.send(_error(f"unexpected message {kind!r} in a session"))

    async def _grant(self, r: spb.SliceRequest, session: Stream) -> None:
        check_budget_id(r.budget_id)
        g = await self.holdings.grant(
            r.budget_id,
            session.agent_id,
            _usage(r.usage, r.budget_id),
            need=r.needed,
            rate=float(r.observed_rate),
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
    )


def _usage(u: spb.Usage, budget_id: str | None = None) -> Usage:
    if budget_id is not None and u.budget_id and u.budget_id != budget_id:
        raise InvalidInput(f"usage of budget {u.budget_id!r} in a message about {budget_id!r}")
    for name in ("seq", "consumed", "returned", "reserved", "released"):
        if getattr(u, name) < 0:
            raise InvalidInput(f"usage.{name} must not be negative")
    return usage_from_pb(u)


def _error(message: str) -> spb.CenterMessage:
    return spb.CenterMessage(error=spb.SessionError(message=message))
