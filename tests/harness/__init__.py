"""Throwaway real services (Redis, Redis Cluster, PostgreSQL) for the tests; see services.py."""

from ._process import HarnessError, free_port, install_sigterm_cleanup, stop_all
from .resp import RedisReplyError, redis_command
from .services import (
    PostgresServer,
    RedisCluster,
    RedisServer,
    create_database,
    drop_database,
    dsn_for_database,
    psql,
)

__all__ = [
    "HarnessError",
    "PostgresServer",
    "RedisCluster",
    "RedisReplyError",
    "RedisServer",
    "create_database",
    "drop_database",
    "dsn_for_database",
    "free_port",
    "install_sigterm_cleanup",
    "psql",
    "redis_command",
    "stop_all",
]
