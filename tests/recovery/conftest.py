"""A center of each test's own, on a Redis of its own (free to flush and restart)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from harness import RedisServer
from support.center import CenterThread, Client, center_settings


@pytest.fixture
def lone_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    c = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    yield c
    c.stop()


@pytest.fixture
async def client(lone_center: CenterThread) -> AsyncIterator[Client]:
    c = Client(lone_center.target)
    yield c
    await c.close()


@pytest.fixture
def budget_id() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"
