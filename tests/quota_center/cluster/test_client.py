"""``connect(url)``: the URL's scheme picks a single Redis or a Redis Cluster client, and the
cluster client behaves towards the center as one Redis does (errors, PING, decoding)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from devstack import RedisCluster, free_port
from quota_center.buckets.client import (
    DEFAULT_MAX_CONNECTIONS,
    CenterRedisCluster,
    ClusterUnavailable,
    WrongTopology,
    connect,
    parse_cluster_url,
    torn_connection,
)
from quota_center.health import redis_ok
from tests.helpers.shards import cluster_url, info_section, owner, stat


@pytest.mark.parametrize(
    ("url", "seeds", "options"),
    [
        ("redis+cluster://10.0.0.1:7000", [("10.0.0.1", 7000)], {}),
        ("redis+cluster://a:7000,b:7001,c/", [("a", 7000), ("b", 7001), ("c", 6379)], {}),
        ("REDIS+CLUSTER://h:1/0", [("h", 1)], {}),
        ("redis+cluster://[::1]:7000,[fe80::2]", [("::1", 7000), ("fe80::2", 6379)], {}),
        (
            "redis+cluster://u:p%40ss@h:7000,k:7001/?socket_timeout=2.5&max_connections=50",
            [("h", 7000), ("k", 7001)],
            {"username": "u", "password": "p@ss", "socket_timeout": 2.5, "max_connections": 50},
        ),
        ("rediss+cluster://:secret@h:6380", [("h", 6380)], {"password": "secret", "ssl": True}),
    ],
)
def test_cluster_urls_parse(url: str, seeds: list[tuple[str, int]], options: dict[str, object]) -> None:
    got_seeds, got = parse_cluster_url(url)
    assert got_seeds == seeds
    expected = {"max_connections": DEFAULT_MAX_CONNECTIONS, "decode_responses": True, **options}
    assert got == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+cluster://h:7000/3", "only database 0"),
        ("redis+cluster://h:7000/?db=2", "only database 0"),
        ("redis+cluster://h:7000,,k:1", "bad host:port"),
        ("redis+cluster://h:notaport", "bad host:port"),
        ("redis+cluster://:pw@h:7000/?decode_responses=no", "always decodes"),
        ("redis://127.0.0.1:6379/0?cluster=true", r"scheme, redis\+cluster://"),
        ("redis://127.0.0.1:6379/0?decode_responses=false", "always decodes"),
        ("redis+cluster://h:7000/?no_such_option=1", "unsupported option"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        connect(url)


def test_a_password_never_appears_in_the_complaint() -> None:
    with pytest.raises(ValueError, match="only database 0") as caught:
        connect("redis+cluster://user:hunter2@h:7000/5")
    assert "hunter2" not in str(caught.value)


async def test_the_scheme_picks_the_client_and_both_decode(redis_cluster: RedisCluster) -> None:
    single = connect(redis_cluster.url)
    cluster = connect(cluster_url(redis_cluster))
    try:
        assert isinstance(single, Redis)
        assert not isinstance(single, AsyncRedisCluster)
        assert isinstance(cluster, CenterRedisCluster)
        key = "{q:decode-check}"
        assert await cluster.set(key, "fp", nx=True, get=True, ex=60) is None
        assert await cluster.set(key, "other", nx=True, get=True, ex=60) == "fp"  # str, not bytes
        assert sorted(n.port for n in cluster.get_primaries()) == sorted(n.port for n in redis_cluster.nodes)
    finally:
        await single.aclose()
        await cluster.aclose()


async def test_a_plain_url_at_a_cluster_node_names_the_scheme(redis_cluster: RedisCluster) -> None:
    plain = connect(redis_cluster.url)
    first = redis_cluster.nodes[0]
    elsewhere = next(
        k for k in (f"{{b:moved-{i}}}:main" for i in range(100)) if owner(redis_cluster, k) != first
    )
    try:
        with pytest.raises(WrongTopology, match=r"redis\+cluster://"):
            await plain.hget(elsewhere, "bal")
    finally:
        await plain.aclose()


async def test_ping_asks_every_primary(redis_cluster: RedisCluster) -> None:
    cluster = connect(cluster_url(redis_cluster))
    try:
        await cluster.ping()  # connects and learns the slot map
        before = [stat(info_section(n, "commandstats"), "cmdstat_ping", "calls") for n in redis_cluster.nodes]
        assert await cluster.ping() is True
        after = [stat(info_section(n, "commandstats"), "cmdstat_ping", "calls") for n in redis_cluster.nodes]
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    finally:
        await cluster.aclose()


async def test_an_unreachable_cluster_is_a_redis_error_and_health_says_no() -> None:
    dead = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    client = connect(dead)
    try:
        with pytest.raises(ClusterUnavailable) as caught:
            await client.hget("{b:x}:main", "bal")
        # A RedisError: the gRPC layer answers UNAVAILABLE, the health check does not crash.
        assert isinstance(caught.value, RedisError)
        assert await redis_ok(client) is False
    finally:
        await client.aclose()


async def broken_write() -> None:
    """What redis-py raises writing on a connection another task just closed: no writer."""
    await Connection(host="127.0.0.1", port=free_port())._send_packed_command([b"PING\r\n"])


async def broken_read() -> None:
    """What it raises reading the reply on such a connection: its parser is torn down."""
    await Connection(host="127.0.0.1", port=free_port()).read_response()


async def test_a_connection_torn_under_a_command_is_recognised_by_where_it_broke() -> None:
    with pytest.raises(AttributeError) as write:
        await broken_write()
    assert torn_connection(write.value)
    with pytest.raises(AttributeError) as read:
        await broken_read()
    assert torn_connection(read.value)
    with pytest.raises(AttributeError) as ours:
        None.writelines  # type: ignore[attr-defined]  # noqa: B018  (the same error, raised elsewhere)
    assert not torn_connection(ours.value)
    assert not torn_connection(ValueError("x"))


async def test_a_torn_connection_is_tried_once_more_only_if_nothing_was_sent(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = AsyncRedisCluster.execute_command
    failures, breaking = 0, broken_write
    bug = False

    async def flaky(self: AsyncRedisCluster, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if bug:
            raise AttributeError("a bug of the caller's, not a torn connection")
        if calls["n"] <= failures:
            await breaking()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(AsyncRedisCluster, "execute_command", flaky)
    cluster = connect(cluster_url(redis_cluster))
    try:
        failures = 1  # torn before the command was written: tried again, transparently
        assert await cluster.set("{q:torn}", "fp", ex=60) is True
        assert calls["n"] == 2
        failures, calls["n"] = 2, 0  # torn twice: unavailable
        with pytest.raises(ClusterUnavailable, match="closed under a command"):
            await cluster.get("{q:torn}")
        assert calls["n"] == 2
        failures, breaking, calls["n"] = 1, broken_read, 0  # torn while reading the reply: not resent
        with pytest.raises(ClusterUnavailable, match="closed under a command"):
            await cluster.get("{q:torn}")
        assert calls["n"] == 1
        bug, calls["n"] = True, 0
        with pytest.raises(AttributeError, match="a bug"):  # any other AttributeError stays as it is
            await cluster.get("{q:torn}")
        assert calls["n"] == 1
    finally:
        await cluster.aclose()
