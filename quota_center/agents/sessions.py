"""The agents connected to this center process, and reclaim orders sent over their streams.

One session per agent id. A second claim of a live id is refused: a stream that has been silent
for ``stale_after_s`` (several heartbeats: the agent behind it is gone, or cut off) is the only
one a new stream replaces. Reclaim orders go only to agents connected here; an agent holding the
budget that is connected elsewhere, or not at all, counts as not answering, and the refusal says
what it holds.

What a session sends waits in its outbox until the stream takes it. An agent that stops reading
while it goes on sending would grow that without bound, so at ``max_unread`` messages the session
is closed with a reason (``overflowed``) instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from quota_center.agents.relay import Relay
from quota_center.buckets.agents import AgentStore
from quota_center.budgets.registry import BudgetMeta
from quota_center.budgets.sellout import Availability
from quota_center.errors import Unavailable
from quota_center.holders import agent_of
from quota_center.metrics import AGENT_RECLAIMS, AGENT_SESSION_ENDS, AGENT_SESSIONS
from quota_center.transfers.protocol import now_ms

log = logging.getLogger(__name__)


# A retry is checked with agents whose lease ran out at most this long ago: one gone for longer
# stopped serving before, and its records of what it served are beyond the center's reach.
RETRY_LOOKBACK_MS = 60_000

# How often a relayed reclaim looks whether the agents elsewhere gave their holdings back.
RELAY_POLL_S = 0.01

# Messages a session may have waiting for its stream before it is closed.
MAX_UNREAD = 1024


def availability_pb(a: Availability) -> spb.Availability:
    return spb.Availability(budget_id=a.budget_id, sold_out=a.sold_out, version=a.version)


def _code_name(code: int) -> str:
    return pb.ResultCode.Name(code).removeprefix("RESULT_CODE_")


class AlreadyConnected(Exception):
    """A second session for an agent id whose first session is live."""


@dataclass(frozen=True, slots=True)
class ServedElsewhere:
    """An agent's record of a request it served from its slice (a RecordAnswer)."""

    agent_id: str
    kind: str
    budget_id: str
    amount: int
    code: str


@dataclass(eq=False)
class Session:
    agent_id: str
    max_unread: int = MAX_UNREAD
    outbox: asyncio.Queue[spb.CenterMessage | None] = field(default_factory=asyncio.Queue)
    orders: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    queries: dict[str, asyncio.Future[spb.RecordAnswer]] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    overflowed: bool = False
    replaced: bool = False
    closed: bool = False
    # Called once the session closes for too many unread answers: the stream's writer may be
    # stuck behind flow control, so the stream has to be ended from outside it.
    on_overflow: Callable[[], None] | None = None

    def send(self, message: spb.CenterMessage) -> None:
        if self.closed:
            return
        if self.outbox.qsize() >= self.max_unread:
            log.warning("agent %s: %d messages unread: session closed", self.agent_id, self.max_unread)
            self.overflowed = True
            AGENT_SESSION_ENDS.labels("unread").inc()  # now: its stream may take a while to end
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self.outbox.put_nowait(message)

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.outbox.put_nowait(None)
        waiting: list[asyncio.Future[Any]] = [*self.orders.values(), *self.queries.values()]
        for future in waiting:
            if not future.done():
                future.cancel()


class Sessions:
    def __init__(
        self,
        store: AgentStore,
        reclaim_timeout_s: float,
        *,
        stale_after_s: float,
        max_unread: int = MAX_UNREAD,
    ) -> None:
        self.store = store
        self.reclaim_timeout_s = reclaim_timeout_s
        self.stale_after_s = stale_after_s
        self.max_unread = max_unread
        self._live: dict[str, Session] = {}
        # Reaches the agents connected to other center processes (agents/relay.py); None: only
        # this process's agents are ordered, the others count as not answering.
        self.relay: Relay | None = None

    def attach(self, agent_id: str) -> Session:
        """A session for ``agent_id``; AlreadyConnected while another one of it is live."""
        old = self._live.get(agent_id)
        if old is not None:
            silent = time.monotonic() - old.last_seen
            if silent < self.stale_after_s:
                raise AlreadyConnected(
                    f"agent {agent_id} is connected already (its session spoke {silent:.1f} s ago); a"
                    f" second session is taken only once the first has been silent for {self.stale_after_s:g} s"
                )
            log.warning("agent %s: replacing its session, silent for %.1f s", agent_id, silent)
            old.replaced = True
            old.close()
        session = self._live[agent_id] = Session(agent_id, self.max_unread)
        AGENT_SESSIONS.set(len(self._live))
        return session

    def detach(self, session: Session) -> None:
        if self._live.get(session.agent_id) is session:
            del self._live[session.agent_id]
        session.close()
        if not session.overflowed:
            AGENT_SESSION_ENDS.labels("replaced" if session.replaced else "ended").inc()
        AGENT_SESSIONS.set(len(self._live))

    def answered(self, session: Session, order_id: str, released: int) -> None:
        order = session.orders.pop(order_id, None)
        if order is not None and not order.done():
            order.set_result(released)

    def record_answered(self, session: Session, answer: spb.RecordAnswer) -> None:
        query = session.queries.pop(answer.query_id, None)
        if query is not None and not query.done():
            query.set_result(answer)

    async def lookup(self, budget_id: str, request_id: str) -> ServedElsewhere | None:
        """Which agent holding ``budget_id`` served ``request_id`` from its slice, if one did.

        Every agent registered on the budget whose lease may still let it serve is asked over its
        session, all at once, for at most the reclaim timeout. None: none of them did. Unavailable
        when one that might have cannot be asked (not connected here, or silent): a retry is never
        served a second time on a guess. An agent whose lease ran out before now cannot have served
        since, and one gone longer than that is not asked (README, "Retrying": the limits).
        """
        now = now_ms()
        waits: dict[str, asyncio.Future[spb.RecordAnswer]] = {}
        unasked: list[str] = []
        for agent_id in await self.store.agents(budget_id):
            session = self._live.get(agent_id)
            if session is None:
                lease = int((await self.store.fields(budget_id, agent_id)).get("lease", "0") or 0)
                if lease > now - RETRY_LOOKBACK_MS:
                    unasked.append(agent_id)
                continue
            query_id = uuid.uuid4().hex
            future: asyncio.Future[spb.RecordAnswer] = asyncio.get_running_loop().create_future()
            session.queries[query_id] = future
            waits[agent_id] = future
            session.send(
                spb.CenterMessage(
                    record_query=spb.RecordQuery(
                        query_id=query_id, budget_id=budget_id, request_id=request_id
                    )
                )
            )
        if waits:
            done, _ = await asyncio.wait(waits.values(), timeout=self.reclaim_timeout_s)
            for agent_id, future in waits.items():
                if future not in done or future.cancelled():
                    future.cancel()
                    unasked.append(agent_id)
                    continue
                answer = future.result()
                if answer.known:
                    return ServedElsewhere(
                        agent_id, answer.kind, answer.budget_id, answer.amount, _code_name(answer.code)
                    )
        if unasked:
            raise Unavailable(
                f"request {request_id} is a retry the center has not served; agent(s) {', '.join(sorted(unasked))}"
                f" holding budget {budget_id} may have served it and cannot be asked now: retry later"
            )
        return None

    async def announce(self, availability: Availability) -> None:
        """Tell the agents connected here that hold the budget its sold-out mark changed."""
        message = spb.CenterMessage(availability=availability_pb(availability))
        for agent_id in await self.store.agents(availability.budget_id):
            session = self._live.get(agent_id)
            if session is not None:
                session.send(message)

    def order(self, budget_id: str, agent_ids: list[str], amount: int) -> None:
        """A reclaim order relayed from another center process: sent to those agents connected here
        (their answers are applied as reports; the publisher watches their holdings fall)."""
        deadline = now_ms() + int(self.reclaim_timeout_s * 1000)
        for agent_id in agent_ids:
            session = self._live.get(agent_id)
            if session is not None:
                AGENT_RECLAIMS.labels("relayed").inc()
                session.send(
                    spb.CenterMessage(
                        reclaim=spb.ReclaimOrder(
                            order_id=uuid.uuid4().hex,
                            budget_id=budget_id,
                            amount=amount,
                            deadline_ms=deadline,
                        )
                    )
                )

    async def _relayed(self, budget_id: str, elsewhere: dict[str, int]) -> dict[str, int]:
        """Order agents connected to other processes through the relay, and wait (the reclaim
        timeout at most) until what they hold is gone; returns what those that did not give back hold."""
        if self.relay is None or not self.relay.ready.is_set():
            return elsewhere
        now = now_ms()
        live = []
        for holder in elsewhere:
            agent_id = agent_of(holder) or ""
            lease = int((await self.store.fields(budget_id, agent_id)).get("lease", "0") or 0)
            if lease > now:  # a holding whose lease ran out is in doubt, not reclaimable
                live.append(agent_id)
        if not live:
            return elsewhere
        await self.relay.publish(budget_id, live, max(elsewhere.values()))
        deadline = time.monotonic() + self.reclaim_timeout_s
        while True:
            held = await self.store.held(budget_id)
            left = {h: held[h] for h in elsewhere if held.get(h)}
            if not left or time.monotonic() >= deadline:
                AGENT_RECLAIMS.labels("relay_answered").inc(len(elsewhere) - len(left))
                return left
            await asyncio.sleep(RELAY_POLL_S)

    async def reclaim(self, meta: BudgetMeta, short: int) -> dict[str, int]:
        """Order every agent holding ``meta``'s budget to give back its unreserved balance.

        All of it, not just ``short``: the request needs main to hold it, and in the end game
        the rest is better in main than stranded in a holding. Returns what the agents that did
        not answer within the timeout hold, by holder.
        """
        held = await self.store.held(meta.budget_id)
        if not held or meta.policy.strategy == "static":
            return {}  # a static budget never takes back a holder's share
        deadline = now_ms() + int(self.reclaim_timeout_s * 1000)
        waits: dict[str, asyncio.Future[int]] = {}
        unanswered: dict[str, int] = {}
        elsewhere: dict[str, int] = {}
        for holder, amount in held.items():
            agent_id = agent_of(holder) or ""
            session = self._live.get(agent_id)
            if session is None:
                elsewhere[holder] = amount  # connected to another process, or not at all
                continue
            order_id = uuid.uuid4().hex
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            session.orders[order_id] = future
            waits[holder] = future
            session.send(
                spb.CenterMessage(
                    reclaim=spb.ReclaimOrder(
                        order_id=order_id, budget_id=meta.budget_id, amount=amount, deadline_ms=deadline
                    )
                )
            )
        relayed = asyncio.ensure_future(self._relayed(meta.budget_id, elsewhere))
        if waits:
            done, _ = await asyncio.wait(waits.values(), timeout=self.reclaim_timeout_s)
            for holder, future in waits.items():
                if future in done and not future.cancelled():
                    AGENT_RECLAIMS.labels("answered").inc()
                else:
                    future.cancel()
                    AGENT_RECLAIMS.labels("timeout").inc()
                    unanswered[holder] = held[holder]
        for holder, amount in (await relayed).items():
            AGENT_RECLAIMS.labels("disconnected").inc()
            unanswered[holder] = amount
        if unanswered:
            # What they hold now (an answer may have come in just after the timeout).
            now_held = await self.store.held(meta.budget_id)
            unanswered = {h: now_held[h] for h in unanswered if now_held.get(h)}
        return unanswered
