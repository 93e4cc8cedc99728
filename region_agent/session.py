"""The agent's side of the session stream to the center (``quota.v1.AgentSession/Session``).

One long-lived bidirectional stream: a ``Hello`` with the usage of every journaled budget,
answered by a ``Welcome`` with their holdings; then heartbeats with the usage of every budget
(answered by ``LeaseRenewal``), background ``SliceRequest``s (answered by ``Grant``), reports
after a release, and answers to the center's ``ReclaimOrder``s. Every holding the center sends
is adopted by the core with the send time of the request it answers, which is where the lease
is measured from; a holding whose request this agent cannot pin down renews nothing.

When the stream fails the agent reconnects with exponential backoff and jitter, and keeps
serving from its slices meanwhile, until their lease deadlines pass. Slices are checked for a
refill or a release every ``refill_interval_ms`` by ``maintain``, which also sweeps expired
reservations whether or not the center is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import grpc

from quota.v1 import session_pb2 as spb
from quota.v1 import session_pb2_grpc
from quota_rules.usage import usage_pb
from region_agent.convert import code_name, code_value, holding_from_pb
from region_agent.core.agent import Agent
from region_agent.metrics import Metrics
from region_agent.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], int]

# Heartbeats and reports whose answers are still awaited; older ones are forgotten (their
# answers then renew nothing, which only shortens a lease).
MAX_OUTSTANDING = 64


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class SessionFailed(Exception):
    """The stream ended or the center said something this agent cannot go on from."""


class Session:
    def __init__(
        self,
        agent: Agent,
        channel: grpc.aio.Channel,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Clock = monotonic_ms,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.agent = agent
        self.stub = session_pb2_grpc.AgentSessionStub(channel)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.jitter = jitter
        self.session_id = ""
        self.heartbeat_ms = 1000
        self.heartbeat_answered: int | None = None  # agent-monotonic ms of the last answer
        self.connected = asyncio.Event()
        self._out: asyncio.Queue[spb.AgentMessage | None] | None = None
        self._slice_requests: dict[str, tuple[str, int]] = {}  # request id -> (budget, sent at)
        self._asking: dict[str, str] = {}  # budget -> its SliceRequest in flight
        self._arrivals: dict[str, asyncio.Event] = {}  # budget -> set when that request is answered
        self._renewal = asyncio.Event()  # set on every LeaseRenewal (close waits for its last one)
        self._quiet_until: dict[str, int] = {}  # budget -> no background ask before (after a refusal)
        self._heartbeats: deque[int] = deque(maxlen=MAX_OUTSTANDING)
        self._reports: dict[str, deque[int]] = {}  # budget -> send times of unanswered reports
        self._tasks: list[asyncio.Task[None]] = []
        self._call: grpc.aio.StreamStreamCall[spb.AgentMessage, spb.CenterMessage] | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.run()), asyncio.create_task(self.maintain())]

    def running(self) -> bool:
        """The session's loops are running (started, none ended: they end only when closed)."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def close(self, flush_s: float = 1.0) -> None:
        """Report once more, end the stream and stop the loops; the journal keeps the counters.

        The last report (a heartbeat, answered with a renewal) lets the center book what was
        served since the previous one now rather than when the agent comes back; if the center
        does not answer within ``flush_s`` the agent stops anyway.
        """
        if self._out is not None and self.connected.is_set() and self.agent.budgets():
            sent = self.clock()
            self._heartbeats.append(sent)
            usage = [self._usage(b) for b in self.agent.budgets()]
            self._send(spb.AgentMessage(heartbeat=spb.Heartbeat(sent_at_ms=sent, usage=usage)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_s):
                    while sent in self._heartbeats and self._out is not None:
                        self._renewal.clear()
                        await self._renewal.wait()
        if self._out is not None:
            self._out.put_nowait(None)
        # Cancel the call first: a task cancelled while it awaits the call's read() does not
        # always wake up until the call itself ends.
        if self._call is not None:
            self._call.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            while not task.done():
                await asyncio.wait({task}, timeout=0.1)
                task.cancel()
                if self._call is not None:
                    self._call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
        self._tasks = []

    async def run(self) -> None:
        """Keep a stream to the center open, reconnecting with exponential backoff and jitter."""
        backoff = self.settings.reconnect_min_ms
        while True:
            welcomed = False
            try:
                async for _ in self._stream():
                    welcomed = True
                    backoff = self.settings.reconnect_min_ms
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                self.metrics.session_errors.inc()
                log.warning("session with the center failed: %s: %s", exc.code().name, exc.details())
            except (SessionFailed, TimeoutError) as exc:
                self.metrics.session_errors.inc()
                log.warning("session with the center failed: %s", exc or type(exc).__name__)
            finally:
                self._disconnected()
            if welcomed:
                log.info("session with the center ended; reconnecting")
            # Half the backoff plus a random half: agents cut off together do not return together.
            delay = backoff / 2 + self.jitter() * backoff / 2
            await asyncio.sleep(delay / 1000)
            backoff = min(self.settings.reconnect_max_ms, backoff * 2)

    # ---- asking the center ------------------------------------------------------------------

    def request_slice(self, budget_id: str, needed: int = 0, *, patient: bool = False) -> bool:
        """Send a SliceRequest for ``budget_id`` unless one is in flight or the stream is down.

        ``patient``: also not while the center lately answered that it had nothing to grant
        (a heartbeat's time): a request that found its slice short asks at most that often.
        """
        if self._out is None or budget_id in self._asking:
            return False
        now = self.clock()
        if patient and now < self._quiet_until.get(budget_id, 0):
            return False
        request_id = f"{self.settings.agent_id}:slice:{uuid.uuid4().hex}"
        self._slice_requests[request_id] = (budget_id, now)
        self._asking[budget_id] = request_id
        self._send(
            spb.AgentMessage(
                slice_request=spb.SliceRequest(
                    budget_id=budget_id,
                    request_id=request_id,
                    needed=needed,
                    observed_rate=self.agent.observed_rate(budget_id, now),
                    usage=self._usage(budget_id),
                )
            )
        )
        return True

    def ask_when_short(self, budget_id: str, needed: int) -> bool:
        """``request_slice`` for a request its slice could not cover (see ``patient``)."""
        return self.request_slice(budget_id, needed, patient=True)

    async def slice_arrival(self, budget_id: str, wait_s: float) -> bool:
        """Wait up to ``wait_s`` for the answer to the SliceRequest of ``budget_id`` in flight.

        Returns at once (False) when none is in flight. Requests that find their slice empty
        while one is on its way wait for it instead of all going to the center: a burst at cold
        start, or a slice that ran dry a moment before its refill, costs one center call.
        """
        if budget_id not in self._asking:
            return False
        event = self._arrivals.setdefault(budget_id, asyncio.Event())
        try:
            async with asyncio.timeout(wait_s):
                await event.wait()
        except TimeoutError:
            return False
        return True

    def _arrived(self, budget_id: str) -> None:
        event = self._arrivals.pop(budget_id, None)
        if event is not None:
            event.set()

    def report(self, budget_id: str) -> None:
        """Send the budget's usage outside a heartbeat (after a release)."""
        if self._out is None:
            return
        self._sent_report(budget_id)
        self._send(spb.AgentMessage(usage=self._usage(budget_id)))

    async def maintain(self) -> None:
        """Every refill interval: sweep reservations, refill low slices, give back idle surplus."""
        interval = self.settings.refill_interval_ms / 1000
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("slice maintenance failed; retrying")
            await asyncio.sleep(interval)

    def tick(self) -> None:
        now = self.clock()
        self.agent.expire(now)
        self._expire_slice_requests(now)
        if self._out is None:
            return
        for budget_id in self.agent.budgets():
            give = self.agent.release_due(budget_id, now)
            if give > 0:
                released = self.agent.release(budget_id, give)
                if released > 0:
                    self.metrics.released.labels("idle").inc(released)
                    self.report(budget_id)
                continue
            if now >= self._quiet_until.get(budget_id, 0) and self.agent.wants_refill(budget_id, now):
                self.request_slice(budget_id)

    # ---- the stream -------------------------------------------------------------------------

    async def _stream(self) -> AsyncIterator[None]:
        """One stream: yields once welcomed, then handles messages until it ends."""
        out: asyncio.Queue[spb.AgentMessage | None] = asyncio.Queue()
        sent = self.clock()
        usage = [self._usage(b) for b in self.agent.budgets()]
        out.put_nowait(
            spb.AgentMessage(
                hello=spb.Hello(agent_id=self.settings.agent_id, region=self.settings.region, usage=usage)
            )
        )
        self.metrics.reconnects.inc()
        call = self._call = self.stub.Session(_drain(out))
        try:
            first = await asyncio.wait_for(call.read(), self.settings.forward_deadline_ms / 1000)
            if first is grpc.aio.EOF or not isinstance(first, spb.CenterMessage):
                raise SessionFailed("the center closed the stream before its Welcome")
            if first.WhichOneof("body") != "welcome":
                raise SessionFailed(
                    f"the center answered Hello with {first.WhichOneof('body')}, not a Welcome"
                )
            welcome = first.welcome
            self.session_id = welcome.session_id
            if welcome.heartbeat_ms > 0:
                self.heartbeat_ms = welcome.heartbeat_ms
            for h in welcome.holdings:
                self._adopt(h, sent)
            self.heartbeat_answered = self.clock()
            self._out = out
            self.connected.set()
            log.info(
                "session %s open: heartbeat %d ms, %d holdings",
                self.session_id,
                self.heartbeat_ms,
                len(welcome.holdings),
            )
            yield
            beats = asyncio.create_task(self._heartbeats_loop())
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF or not isinstance(message, spb.CenterMessage):
                        return
                    self._handle(message)
            finally:
                beats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beats
        finally:
            out.put_nowait(None)
            call.cancel()
            self._call = None

    async def _heartbeats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 1000)
            sent = self.clock()
            self._heartbeats.append(sent)
            usage = [self._usage(b) for b in self.agent.budgets()]
            self._send(spb.AgentMessage(heartbeat=spb.Heartbeat(sent_at_ms=sent, usage=usage)))

    def _handle(self, message: spb.CenterMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "grant":
            self._granted(message.grant)
        elif kind == "lease":
            self._renewed(message.lease)
        elif kind == "reclaim":
            self._reclaim(message.reclaim)
        elif kind == "holding":
            times = self._reports.get(message.holding.budget_id)
            self._adopt(message.holding, times.popleft() if times else None)
        elif kind == "availability":
            a = message.availability
            self.agent.hear(a.budget_id, a.sold_out, a.version)
        elif kind == "record_query":
            self._answer_query(message.record_query)
        elif kind == "error":
            self.metrics.session_errors.inc()
            log.warning("the center reports a session error: %s", message.error.message)
        else:
            log.debug("ignoring a %s message from the center", kind)

    def _answer_query(self, q: spb.RecordQuery) -> None:
        """Say whether this agent served ``q.request_id`` from its slice, and what it answered."""
        served = self.agent.served(q.request_id)
        answer = spb.RecordAnswer(query_id=q.query_id, known=served is not None)
        if served is not None:
            answer.kind = served.kind
            answer.budget_id = served.budget_id
            answer.amount = served.answer.amount
            answer.code = code_value(served.answer.code)
        self._send(spb.AgentMessage(record_answer=answer))

    def _granted(self, g: spb.Grant) -> None:
        pending = self._slice_requests.pop(g.request_id, None)
        now = self.clock()
        code = code_name(g.code)
        self.metrics.refills.labels(code).inc()
        if pending is not None:
            budget_id, sent = pending
            self.metrics.refill_seconds.observe(max(0, now - sent) / 1000)
            if self._asking.get(budget_id) == g.request_id:
                del self._asking[budget_id]
        if g.HasField("holding"):
            self._adopt(g.holding, pending[1] if pending is not None else None)
        self._arrived(g.budget_id)
        if code == "OK" and g.amount > 0:
            self.metrics.refilled.inc(g.amount)
            self.agent.granted(g.budget_id, g.amount)
            self._quiet_until.pop(g.budget_id, None)
        else:
            # Asking again at once would get the same answer: wait a heartbeat (a forwarded
            # request for the budget still asks at once, see request_slice).
            self._quiet_until[g.budget_id] = now + max(self.heartbeat_ms, self.settings.refill_interval_ms)

    def _renewed(self, renewal: spb.LeaseRenewal) -> None:
        self._renewal.set()
        sent: int | None = renewal.sent_at_ms
        if sent in self._heartbeats:
            while self._heartbeats and self._heartbeats[0] <= renewal.sent_at_ms:
                self._heartbeats.popleft()
            self.heartbeat_answered = self.clock()
        else:
            sent = None  # not a heartbeat this agent is waiting for: trust no lease from it
        for h in renewal.holdings:
            self._adopt(h, sent)

    def _usage(self, budget_id: str) -> spb.Usage:
        """This agent's report of a budget, with what it may still spend of its holding."""
        return usage_pb(budget_id, self.agent.usage(budget_id), self.agent.available(budget_id))

    def _reclaim(self, order: spb.ReclaimOrder) -> None:
        released, usage = self.agent.answer_reclaim(order.budget_id, order.amount)
        self.metrics.reclaims.inc()
        if released > 0:
            self.metrics.released.labels("reclaim").inc(released)
        self._sent_report(order.budget_id)
        self._send(
            spb.AgentMessage(
                reclaim_answer=spb.ReclaimAnswer(
                    order_id=order.order_id,
                    budget_id=order.budget_id,
                    released=released,
                    usage=usage_pb(order.budget_id, usage, self.agent.available(order.budget_id)),
                )
            )
        )

    def _adopt(self, message: spb.AgentHolding, sent: int | None) -> None:
        holding = holding_from_pb(message)
        if sent is None:
            holding = replace(holding, lease_ms=0)
        try:
            self.agent.adopt(holding, sent if sent is not None else self.clock())
        except ValueError as exc:  # a holding for a budget id this agent cannot hold
            log.warning("ignoring a holding from the center: %s", exc)

    def _sent_report(self, budget_id: str) -> None:
        times = self._reports.setdefault(budget_id, deque(maxlen=MAX_OUTSTANDING))
        times.append(self.clock())

    def _expire_slice_requests(self, now: int) -> None:
        # A SliceRequest unanswered for long (lost with a stream) must not block the next one.
        limit = now - max(self.settings.forward_deadline_ms, 2 * self.heartbeat_ms)
        for request_id, (budget_id, sent) in list(self._slice_requests.items()):
            if sent < limit:
                del self._slice_requests[request_id]
                if self._asking.get(budget_id) == request_id:
                    del self._asking[budget_id]
                    self._arrived(budget_id)

    def _send(self, message: spb.AgentMessage) -> None:
        if self._out is not None:
            self._out.put_nowait(message)

    def _disconnected(self) -> None:
        # Answers to what was sent on the old stream never come: forget them.
        self._out = None
        self.connected.clear()
        # Refusing locally is right only while the center can tell this agent that budget came back.
        self.agent.forget_sold_out()
        self._slice_requests.clear()
        self._asking.clear()
        for event in self._arrivals.values():
            event.set()  # nothing is coming: let waiting requests go on to the center
        self._arrivals.clear()
        self._heartbeats.clear()
        self._reports.clear()


async def _drain(out: asyncio.Queue[spb.AgentMessage | None]) -> AsyncIterator[spb.AgentMessage]:
    """The outgoing half of the stream: what is queued, until a None ends it."""
    while True:
        message = await out.get()
        if message is None:
            return
        yield message
