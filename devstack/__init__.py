"""One way to start throwaway servers: Redis, Redis Cluster, PostgreSQL, the center and agents.

The tests, the load tests, the benchmark and scripts/run-stack.sh all start their servers here,
each on 127.0.0.1 (free ports unless told otherwise), logging to a file that start-up errors
quote, stopped by their owner or at interpreter exit. The center and the agents run as their
own commands (``quota-center serve``, ``region-agent serve``), so this package needs only the
contract (``quota``), never their code. ``python -m devstack --help`` is the command line.
"""

from .cleanup import install_sigterm_cleanup, stop_all
from .errors import StackError
from .grpc_servers import AgentProcess, CenterProcess, GrpcProcess, serving
from .ports import LOOPBACK, free_port, port_open, wait_listening
from .postgres import PostgresServer, create_database, drop_database, dsn_for_database, psql
from .process import ServerProcess
from .redis_server import RedisCluster, RedisServer
from .resp import RedisReplyError, info_fields, redis_command
from .stack import REGIONS, Stack

__all__ = [
    "LOOPBACK",
    "REGIONS",
    "AgentProcess",
    "CenterProcess",
    "GrpcProcess",
    "PostgresServer",
    "RedisCluster",
    "RedisReplyError",
    "RedisServer",
    "ServerProcess",
    "Stack",
    "StackError",
    "create_database",
    "drop_database",
    "dsn_for_database",
    "free_port",
    "info_fields",
    "install_sigterm_cleanup",
    "port_open",
    "psql",
    "redis_command",
    "serving",
    "stop_all",
    "wait_listening",
]
