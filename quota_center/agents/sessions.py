"""The agents connected to this center process, and reclaim orders sent over their streams.

One session per agent id: a reconnecting agent replaces its older stream. Reclaim orders go only
to agents connected here; an agent holding the budget that is connected elsewhere, or not at
all, counts as not answering, and the refusal says what it holds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from quota.v1 import session_pb2 as spb
from quota_center.buckets.agents import AgentStore
from quota_center.budgets.registry import BudgetMeta
from quota_center.holders import agent_of
from quota_center.metrics import AGENT_RECLAIMS, AGENT_SESSIONS
from quota_center.transfers.protocol import now_ms

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Session:
    agent_id: str
    outbox: asyncio.Queue[spb.CenterMessage | None] = field(default_factory=asyncio.Queue)
    orders: dict[str, asyncio.Future[int]] = field(default_factory=dict)

    def send(self, message: spb.CenterMessage) -> None:
        self.outbox.put_nowait(message)

    def close(self) -> None:
        self.outbox.put_nowait(None)
        for order in self.orders.values():
            if not order.done():
                order.cancel()


class Sessions:
    def __init__(self, store: AgentStore, reclaim_timeout_s: float) -> None:
        self.store = store
        self.reclaim_timeout_s = reclaim_timeout_s
        self._live: dict[str, Session] = {}

    def attach(self, agent_id: str) -> Session:
        old = self._live.get(agent_id)
        if old is not None:
            old.close()
        session = self._live[agent_id] = Session(agent_id)
        AGENT_SESSIONS.set(len(self._live))
        return session

    def detach(self, session: Session) -> None:
        if self._live.get(session.agent_id) is session:
            del self._live[session.agent_id]
        session.close()
        AGENT_SESSIONS.set(len(self._live))

    def answered(self, session: Session, order_id: str, released: int) -> None:
        order = session.orders.pop(order_id, None)
        if order is not None and not order.done():
            order.set_result(released)

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
        for holder, amount in held.items():
            agent_id = agent_of(holder) or ""
            session = self._live.get(agent_id)
            if session is None:
                unanswered[holder] = amount
                AGENT_RECLAIMS.labels("disconnected").inc()
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
        if waits:
            done, _ = await asyncio.wait(waits.values(), timeout=self.reclaim_timeout_s)
            for holder, future in waits.items():
                if future in done and not future.cancelled():
                    AGENT_RECLAIMS.labels("answered").inc()
                else:
                    future.cancel()
                    AGENT_RECLAIMS.labels("timeout").inc()
                    unanswered[holder] = held[holder]
        if unanswered:
            # What they hold now (an answer may have come in just after the timeout).
            now_held = await self.store.held(meta.budget_id)
            unanswered = {h: now_held[h] for h in unanswered if now_held.get(h)}
        return unanswered
