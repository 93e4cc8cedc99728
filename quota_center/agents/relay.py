"""Reclaim orders for agents connected to other center processes, relayed over Redis pub/sub.

A short request is refused only after the agents holding its budget were ordered to give back what
they hold (``agents.sessions``). An agent's session lives in one center process; when several
processes serve a budget, the one deciding publishes the order on ``CHANNEL`` and every process
passes it to the agents connected to it, whose releases reach main through their own sessions. The
publisher watches their holdings in Redis fall (``Sessions.reclaim``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from quota_center.buckets.scripts import RedisClient

log = logging.getLogger(__name__)

CHANNEL = "quota:reclaim"
RETRY_S = 1.0

# (budget, agent ids, amount): send a ReclaimOrder to those of the agents connected here.
Order = Callable[[str, list[str], int], None]


class Relay:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self.ready = asyncio.Event()  # subscribed: orders published from now on reach this process

    async def publish(self, budget_id: str, agent_ids: list[str], amount: int) -> None:
        message = json.dumps({"budget": budget_id, "agents": agent_ids, "amount": amount})
        await self.redis.publish(CHANNEL, message)

    async def run(self, order: Order) -> None:
        """Pass every order published by any center process to ``order``, until cancelled."""
        while True:
            try:
                pubsub: Any = self.redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                self.ready.set()
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            _deliver(message.get("data"), order)
                finally:
                    self.ready.clear()
                    await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: subscribe again
                log.warning("reclaim relay: %s; subscribing again", exc)
                await asyncio.sleep(RETRY_S)


def _deliver(data: object, order: Order) -> None:
    try:
        body = json.loads(str(data))
        budget_id, agents, amount = str(body["budget"]), [str(a) for a in body["agents"]], int(body["amount"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("reclaim relay: ignoring a malformed order: %s", exc)
        return
    order(budget_id, agents, amount)
