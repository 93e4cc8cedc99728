"""Budgets whose ids extend each other (``X`` and ``X:1``) share nothing in Redis: a transfer left
pending in one while PostgreSQL is down is resolved in that budget only, by real services."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from devstack.ports import free_port
from devstack.postgres import PostgresServer
from devstack.redis_server import RedisServer
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client, center_settings


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, stopped and started again on the same port and data."""
    # Not under pytest's tmp_path: the postgres OS user must reach the directory.
    directory = Path(tempfile.mkdtemp(prefix="qc-pg-"))
    directory.chmod(0o755)
    try:
        with PostgresServer(port=free_port(), directory=directory / "pg") as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def client_of_own(postgres: PostgresServer, fresh_redis: RedisServer) -> AsyncIterator[Client]:
    settings = center_settings(
        fresh_redis.url,
        postgres.create_database("quota"),
        sweep_interval_ms=200,
        transfer_stale_ms=500,
    )
    center = CenterThread(settings).start()
    c = Client(center.target)
    yield c
    await c.close()
    center.stop()


async def test_a_pending_transfer_of_x1_stays_in_x1(client_of_own: Client, postgres: PostgresServer) -> None:
    client = client_of_own
    x = f"campaign-{secrets.token_hex(3)}"
    await create(client, x, 1_000, sub_buckets=4)
    await create(client, f"{x}:1", 1_000_000, sub_buckets=4)
    # Served by a sub-bucket of X:1 other than 1; X has a sub-bucket 1.
    rid = next(f"r{i}" for i in range(100) if sub_bucket_for(f"r{i}", 4) != 1)

    postgres.stop()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await deduct(client, f"{x}:1", rid, 500_000)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    postgres.start()
    await asyncio.sleep(5)  # the sweepers run every 200 ms and take transfers pending for 500 ms

    for budget_id, total in ((x, 1_000), (f"{x}:1", 1_000_000)):
        b = await get(client, budget_id)
        assert (b.total, b.consumed, b.available) == (total, 0, total), budget_id
        await assert_balanced(client, budget_id)
    again = await deduct(client, f"{x}:1", rid, 500_000)
    assert (again.code, again.amount) == (OK, 500_000)
    assert (await get(client, f"{x}:1")).consumed == 500_000
    assert (await get(client, x)).available == 1_000
    await assert_balanced(client, x)
    await assert_balanced(client, f"{x}:1")
