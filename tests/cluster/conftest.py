"""A real center on the session's 3-master Redis Cluster, shared by the tests of this folder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from harness import RedisCluster
from support.center import CenterThread, Client, center_settings

from cluster.shards import cluster_url, wait_cluster_ok


@pytest.fixture(scope="package")
def cluster_center(redis_cluster: RedisCluster, database_url: str) -> Iterator[CenterThread]:
    running = CenterThread(center_settings(cluster_url(redis_cluster), database_url)).start()
    yield running
    running.stop()


@pytest.fixture
def healthy_cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, checked whole before the test (a node-loss test restarts one)."""
    wait_cluster_ok(redis_cluster)
    return redis_cluster


@pytest.fixture
async def client(cluster_center: CenterThread) -> AsyncIterator[Client]:
    c = Client(cluster_center.target)
    yield c
    await c.close()


@pytest.fixture
def budget_id() -> str:
    return f"cb-{uuid.uuid4().hex[:12]}"
