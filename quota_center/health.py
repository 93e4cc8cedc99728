"""The standard gRPC health service, with the two names Kubernetes probes ask for.

* ``readiness`` (and ``""`` and every service name): SERVING while Redis and PostgreSQL answer
  and the center is not stopping. A Kubernetes readiness probe takes the pod out of its Service
  while it is NOT_SERVING; nothing restarts.
* ``liveness``: SERVING while the process and its background loops are alive. A Redis or
  PostgreSQL outage does not fail it (restarting every pod would not bring Redis back); a
  background loop that ended, or an event loop too stuck to answer, does.

On SIGTERM readiness drops at once and the server keeps serving for
``QUOTA_CENTER_SHUTDOWN_DELAY_MS`` (Kubernetes removes the pod from its endpoints meanwhile),
then drains (docs/center.md#probes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2
from redis.exceptions import RedisError

from quota_center.buckets.scripts import RedisClient
from quota_center.ledger.store import LedgerStore

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LIVENESS = "liveness"
READINESS = "readiness"


async def redis_ok(redis: RedisClient) -> bool:
    try:
        async with asyncio.timeout(2):
            return bool(await redis.ping())
    except (RedisError, OSError, TimeoutError):
        return False


class Health:
    def __init__(
        self,
        services: Sequence[str],
        redis: RedisClient,
        ledger: LedgerStore,
        loops_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.servicer = health.aio.HealthServicer()
        self.services = ["", READINESS, *services]
        self.redis = redis
        self.ledger = ledger
        self.loops_alive = loops_alive
        self.draining = False
        self.serving: bool | None = None
        self.live: bool | None = None

    async def check(self) -> bool:
        """Set both names from what answers now; returns readiness."""
        live = self.loops_alive()
        if live != self.live:
            if self.live is not None:
                log.warning("health: %s %s", LIVENESS, "SERVING" if live else "NOT_SERVING")
            self.live = live
            await self.servicer.set(LIVENESS, SERVING if live else NOT_SERVING)
        ok = not self.draining and await redis_ok(self.redis) and await self.ledger.ping()
        if ok != self.serving:
            if self.serving is not None:
                log.warning("health: %s %s", READINESS, "SERVING" if ok else "NOT_SERVING")
            self.serving = ok
            for name in self.services:
                await self.servicer.set(name, SERVING if ok else NOT_SERVING)
        return ok

    async def drain(self) -> None:
        """Not ready from now on (stopping); liveness is left as it is."""
        self.draining = True
        await self.check()

    async def run(self, interval_s: float) -> None:
        while True:
            await self.check()
            await asyncio.sleep(interval_s)
