"""The standard gRPC health service: SERVING only while Redis and PostgreSQL answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2
from redis.exceptions import RedisError

from quota_center.buckets.scripts import RedisClient
from quota_center.ledger.store import LedgerStore

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def redis_ok(redis: RedisClient) -> bool:
    try:
        async with asyncio.timeout(2):
            return bool(await redis.ping())
    except (RedisError, OSError, TimeoutError):
        return False


class Health:
    def __init__(self, services: Sequence[str], redis: RedisClient, ledger: LedgerStore) -> None:
        self.servicer = health.aio.HealthServicer()
        self.services = ["", *services]
        self.redis = redis
        self.ledger = ledger
        self.draining = False
        self.serving: bool | None = None

    async def check(self) -> bool:
        ok = not self.draining and await redis_ok(self.redis) and await self.ledger.ping()
        if ok != self.serving:
            if self.serving is not None:
                log.warning("health: %s", "SERVING" if ok else "NOT_SERVING")
            self.serving = ok
            for name in self.services:
                await self.servicer.set(name, SERVING if ok else NOT_SERVING)
        return ok

    async def drain(self) -> None:
        self.draining = True
        await self.check()

    async def run(self, interval_s: float) -> None:
        while True:
            await self.check()
            await asyncio.sleep(interval_s)
