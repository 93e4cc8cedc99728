"""A center of each test's own, on a Redis of its own (free to flush and restart)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import RedisServer
from tests.helpers.center import CenterThread, center_settings


@pytest.fixture
def lone_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    c = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    yield c
    c.stop()


@pytest.fixture
def serving(lone_center: CenterThread) -> CenterThread:
    """The center this folder's ``client`` talks to."""
    return lone_center
