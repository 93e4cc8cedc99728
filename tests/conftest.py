"""Real services for the whole test suite.

Kept generic on purpose (it imports nothing of quota_center): it only hands out URLs of real
servers. REDIS_URL / DATABASE_URL point the suite at existing servers; without them every session
starts throwaway ones on free 127.0.0.1 ports, so a machine's own Redis/PostgreSQL never matter.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from devstack import (
    PostgresServer,
    RedisCluster,
    RedisServer,
    create_database,
    drop_database,
    install_sigterm_cleanup,
)


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout sends SIGTERM, which skips atexit: stop the servers then as well.
    install_sigterm_cleanup()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the session: $REDIS_URL if set (shared: namespace your keys), else a throwaway one."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
    else:
        with RedisServer() as server:
            yield server.url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database created for this session only, on $DATABASE_URL's server or a throwaway one."""
    name = f"qc_test_{os.getpid()}_{secrets.token_hex(4)}"
    server_dsn = os.environ.get("DATABASE_URL")
    if server_dsn:
        dsn = create_database(server_dsn, name)
        try:
            yield dsn
        finally:
            drop_database(server_dsn, name)
    else:
        with PostgresServer() as server:
            yield server.create_database(name)


@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of the test's own on the session's server: no other test's center is alive in it."""
    name = f"qc_own_{secrets.token_hex(4)}"
    dsn = create_database(database_url, name)
    yield dsn
    drop_database(database_url, name)


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, free to flush, kill and restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster, started on first use only (it takes a few seconds)."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def center(redis_url: str, database_url: str) -> Iterator[Any]:
    """A real center (gRPC on a free port) in a thread with its own event loop, for the session."""
    from tests.helpers.center import CenterThread, center_settings  # imported late: conftest stays generic

    running = CenterThread(center_settings(redis_url, database_url)).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def center_target(center: Any) -> str:
    """``127.0.0.1:PORT`` of the session's center."""
    return str(center.target)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A throwaway CA, certificates and the tests' access file (tests/helpers/tls.py)."""
    from tests.helpers.tls import Tls

    return Tls.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def secure_center(tls: Any, redis_url: str, database_url: str) -> Iterator[Any]:
    """A center with mutual TLS, the tests' access file and a token port, for the session."""
    from tests.helpers.center import CenterThread, center_settings

    running = CenterThread(center_settings(redis_url, database_url, **tls.listener(), token_port=0)).start()
    yield running
    running.stop()


@pytest.fixture
def serving(center: Any) -> Any:
    """The center a test's ``client`` talks to: the session's, unless a folder overrides it."""
    return center


@pytest.fixture
async def client(serving: Any) -> AsyncIterator[Any]:
    """A gRPC client of ``serving``, closed after the test."""
    from tests.helpers.center import Client

    c = Client(serving.target)
    yield c
    await c.close()


@pytest.fixture
def budget_id() -> str:
    """A budget id no other test uses."""
    return f"b-{secrets.token_hex(6)}"
