"""A real center on the session's 3-master Redis Cluster, shared by the tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import RedisCluster
from tests.helpers.center import CenterThread, center_settings
from tests.helpers.shards import cluster_url, wait_cluster_ok


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
def serving(cluster_center: CenterThread) -> CenterThread:
    """The center this folder's ``client`` talks to."""
    return cluster_center
