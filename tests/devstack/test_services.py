"""devstack's servers: each really starts, serves, dies and comes back as promised."""

from __future__ import annotations

import os
import re
import secrets

import asyncpg
import pytest
import redis
import redis.cluster

from devstack import (
    PostgresServer,
    RedisCluster,
    RedisServer,
    StackError,
    dsn_for_database,
    port_open,
    redis_command,
)


def test_redis_kill_and_restart_comes_back_empty(fresh_redis: RedisServer) -> None:
    fresh_redis.command("SET", "k", "v")
    assert fresh_redis.command("GET", "k") == b"v"
    port, old_pid = fresh_redis.port, fresh_redis.pid

    fresh_redis.kill()
    assert not fresh_redis.running
    assert not port_open(port)
    with pytest.raises(ConnectionRefusedError):
        redis_command(port, "PING")

    fresh_redis.restart()
    assert fresh_redis.command("PING") == b"PONG"
    assert (fresh_redis.port, fresh_redis.url) == (port, f"redis://127.0.0.1:{port}/0")
    assert fresh_redis.pid != old_pid
    assert fresh_redis.command("DBSIZE") == 0
    assert fresh_redis.command("GET", "k") is None


def test_redis_graceful_restart_is_empty_too(fresh_redis: RedisServer) -> None:
    fresh_redis.command("SET", "k", "v")
    fresh_redis.restart()
    assert fresh_redis.command("DBSIZE") == 0


def test_redis_stop_frees_port_and_temp_dir() -> None:
    server = RedisServer().start()
    directory, port = server.directory, server.port
    assert directory.is_dir()
    assert redis_command(port, "CONFIG", "GET", "bind") == [b"bind", b"127.0.0.1"]
    server.stop()
    assert not port_open(port)
    assert not directory.exists()
    server.stop()  # idempotent: fixtures and atexit may both stop a server


def test_redis_url_works_with_a_real_client(redis_url: str) -> None:
    key = f"harness-test:{secrets.token_hex(8)}"  # REDIS_URL may be a shared server
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.set(key, "1", ex=60)
        assert client.incr(key) == 2
        client.delete(key)
    finally:
        client.close()


def test_failed_start_quotes_the_server_log() -> None:
    with pytest.raises(StackError, match=r"(?s)exited during start-up.*log tail.*Bad directive"):
        RedisServer(extra_args=["--no-such-directive", "1"]).start()


def test_redis_cluster_reaches_state_ok(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.urls) == 3
    assert redis_cluster.url in redis_cluster.urls
    for info in redis_cluster.cluster_info():
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_known_nodes"] == "3"

    # A cluster client finds every master from one URL and spreads keys over them.
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    keys = [f"harness-cluster:{i}" for i in range(60)]
    try:
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        # Count only this test's keys: other tests share the session's cluster.
        per_node = [node.command("KEYS", "harness-cluster:*") for node in redis_cluster.nodes]
        counts = [len(n) if isinstance(n, list) else -1 for n in per_node]
        assert sum(counts) == len(keys)
        assert all(n > 0 for n in counts)
        client.delete(*keys)
    finally:
        client.close()


async def test_postgres_server_creates_a_database_that_serves_queries() -> None:
    with PostgresServer() as server:
        dsn = server.create_database("harness_db")
        assert dsn == f"postgresql://postgres@127.0.0.1:{server.port}/harness_db"
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL)")
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
            assert await conn.fetchval("SELECT string_agg(note, ',' ORDER BY id) FROM t") == "a,b"
            assert await conn.fetchval("SELECT current_database()") == "harness_db"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("SHOW fsync") == "off"
        finally:
            await conn.close()
        assert server.psql("SELECT count(*) FROM t", database="harness_db").strip() == "2"
        directory, port = server.directory, server.port
    assert not port_open(port)
    assert not directory.exists()


async def test_database_url_is_a_fresh_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        # Named after this process (other tests of the session may already have migrated it).
        name = await conn.fetchval("SELECT current_database()")
        assert re.fullmatch(rf"qc_test_{os.getpid()}_[0-9a-f]{{8}}", name)
        await conn.execute("CREATE TEMP TABLE harness_probe (x int)")
        assert await conn.fetchval("INSERT INTO harness_probe VALUES (7) RETURNING x") == 7
    finally:
        await conn.close()


def test_dsn_for_database_keeps_credentials_and_options() -> None:
    dsn = "postgresql://app:s3cret@db.internal:6543/postgres?sslmode=disable"
    assert dsn_for_database(dsn, "qc_x") == "postgresql://app:s3cret@db.internal:6543/qc_x?sslmode=disable"
