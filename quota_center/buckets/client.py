"""The Redis client the center talks through, made from ``QUOTA_CENTER_REDIS_URL``.

See docs/center.md#redis-client.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from redis import _parsers as redis_parsers
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio import connection as redis_async_connection
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisClusterException, ResponseError, SlotNotCoveredError
from redis.typing import EncodableT

from quota_center.buckets.scripts import RedisClient

log = logging.getLogger(__name__)

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT: Final = 6379
# Connections per server (per node on a cluster) unless the URL sets ``max_connections``. Each
# command under way holds one, so this caps the commands in flight; more wait for a free one
# (at most ``POOL_WAIT_S`` on one server, then a ConnectionError: UNAVAILABLE) rather than fail
# at once, as redis-py's own pools do. A burst (a DeductBatch of 10,000 items) then queues here
# instead of opening thousands of connections up to Redis's ``maxclients``.
DEFAULT_MAX_CONNECTIONS: Final = 256
POOL_WAIT_S: Final = 10.0
# On a cluster, connections per node kept for pipelines and subscriptions beyond the commands' cap.
PIPELINE_CONNECTIONS: Final = 64


class ClusterUnavailable(RedisConnectionError):
    """The cluster could not be reached, or part of its slots has no reachable owner."""


class WrongTopology(ResponseError):
    """A ``redis://`` URL points at a Redis Cluster node."""


def connect(url: str) -> RedisClient:
    """A client for ``url``: a cluster client for ``redis+cluster://``, else a single-server one.

    Raises ValueError for a URL it cannot use. Does no I/O: the first command connects.
    """
    if is_cluster_url(url):
        seeds, options = parse_cluster_url(url)
        try:
            return CenterRedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options
            )
        except TypeError as exc:  # an option RedisCluster does not take
            raise ValueError(f"unsupported option in Redis Cluster URL {_redact(url)}: {exc}") from None
    options = _query_options(url)
    if "cluster" in options:
        raise ValueError(
            f"{_redact(url)}: select a Redis Cluster with the scheme, redis+cluster://host:port[,host:port...]"
            " (or rediss+cluster://), not with ?cluster="
        )
    # Options in the URL win over these keyword arguments (redis-py's ``from_url``).
    pool = BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=DEFAULT_MAX_CONNECTIONS, timeout=POOL_WAIT_S
    )
    return CenterRedis.from_pool(pool)


def is_cluster_url(url: str) -> bool:
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Seed nodes ``(host, port)`` and RedisCluster keyword arguments of a ``redis+cluster://`` URL."""
    scheme, _, rest = url.partition("://")
    base = CLUSTER_SCHEMES.get(scheme.lower())
    if base is None:
        raise ValueError(f"not a Redis Cluster URL (redis+cluster:// or rediss+cluster://): {_redact(url)}")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = authority.rpartition("@")
    seeds = [_seed(part, url) for part in hosts.split(",")]
    _query_options(url)  # refuses decode_responses
    # redis-py parses credentials, path and options of a one-host URL; reuse it on the first seed.
    options: dict[str, Any] = dict(parse_url(f"{base}://{userinfo}{at}{hosts.split(',')[0]}{tail}"))
    path = urlsplit(tail).path
    if path not in ("", "/", "/0") or options.pop("db", 0) != 0:
        raise ValueError(f"a Redis Cluster has only database 0, not {path or 'db='!r}: {_redact(url)}")
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    options.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
    options["decode_responses"] = True
    return seeds, options


def _seed(part: str, url: str) -> tuple[str, int]:
    """``(host, port)`` of one ``host[:port]`` of the seed list."""
    bad = ValueError(f"bad host:port {part!r} in Redis Cluster URL {_redact(url)}")
    try:
        split = urlsplit("//" + part.strip())
        host, port = split.hostname, split.port
    except ValueError:
        raise bad from None
    if not host or split.path or split.query or split.username is not None:
        raise bad
    return host, port or DEFAULT_PORT


def _query_options(url: str) -> dict[str, list[str]]:
    options = parse_qs(urlsplit(url).query)
    if "decode_responses" in options:
        raise ValueError(f"the center always decodes replies: drop decode_responses from {_redact(url)}")
    return options


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.partition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hostpart}"


class CenterRedis(Redis):
    """One Redis server; a ``MOVED`` reply (the server is a cluster node) names the right scheme."""

    async def execute_command(self, *args: EncodableT, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except MovedError as exc:
            raise WrongTopology(
                f"Redis answered MOVED {exc.slot_id} {exc.host}:{exc.port}: it is a Redis Cluster node;"
                " set QUOTA_CENTER_REDIS_URL to redis+cluster://host:port[,host:port...]"
            ) from exc


class CenterRedisCluster(RedisCluster):
    """redis-py's RedisCluster, failing with RedisErrors and pinging every primary (see the module doc).

    Commands in flight are capped at ``max_connections`` for the whole client, so no node's pool
    (capped at as many) ever runs out and fails a command at once: the rest wait their turn.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        commands = int(kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS))
        # Pipelines (the background loops' page reads, a DeductBatch's items) and the relay's
        # subscription take node connections outside the cap on single commands: each node's pool
        # keeps room for them, so a burst of commands waiting on a stalled node cannot leave a
        # pipeline (or a command) without a connection there.
        kwargs["max_connections"] = commands + PIPELINE_CONNECTIONS
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(commands)

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:
            raise ClusterUnavailable(f"Redis Cluster unavailable: {exc}") from exc

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        if args and str(args[0]).upper() == "PING" and "target_nodes" not in kwargs:
            kwargs["target_nodes"] = RedisCluster.PRIMARIES
        for attempt in range(2):
            try:
                async with self._in_flight:
                    return await super().execute_command(*args, **kwargs)
            except SlotNotCoveredError as exc:
                # Other RedisClusterExceptions here are programming errors (keys of several
                # slots in one command, ...) and stay as they are: loud.
                raise ClusterUnavailable(f"Redis Cluster unavailable: {exc}") from exc
            except (AttributeError, TypeError) as exc:
                if not torn_connection(exc):
                    raise
                if attempt or not _unsent(exc):
                    raise ClusterUnavailable(f"Redis connection closed under a command: {exc!r}") from exc
                log.info("Redis connection closed before %s was sent (%r); trying once more", args[0], exc)
        raise AssertionError("unreachable")


# Where the race surfaces: redis-py's async connection, its reply parsers, asyncio's transports.
_TRANSPORT_FILE = os.path.abspath(redis_async_connection.__file__)
_TRANSPORT_DIRS = (
    os.path.dirname(os.path.abspath(redis_parsers.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
)


def torn_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's asyncio transport race, not a bug of the caller.

    When a connection is closed while another task uses it (the async cluster client closes
    every connection when a node answers CLUSTERDOWN, e.g. a master restarting), the next
    write or read on it raises AttributeError/TypeError from inside redis-py's connection or
    asyncio's transport instead of ConnectionError (redis-py issue #4287 and its kin), which
    callers would report as an internal error. Recognised by where it was raised.
    """
    if not isinstance(exc, AttributeError | TypeError):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    origin = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return origin == _TRANSPORT_FILE or origin.startswith(_TRANSPORT_DIRS)


_READING = frozenset({"read_response", "_read_response", "parse_response", "read_from_socket"})


def _unsent(exc: BaseException) -> bool:
    """Whether ``exc`` broke out before the command was written: no reply was being read."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in _READING:
            return False
        tb = tb.tb_next
    return True
