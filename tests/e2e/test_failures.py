"""Failures end to end: the center down for a while (agents keep serving from their slices, then
reconcile), and an agent killed with SIGKILL holding slices (its balance goes in doubt after the
lease; restarted with the same id and journal it reports, and the doubt is settled)."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import grpc
import pytest

from devstack import free_port
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.regions import OK, Book, agent_process, eventually, held_here, start_agents, stop_all


async def _prime(clients: list[Client], budget_id: str, book: Book, at_least: int) -> None:
    """Deduct at every agent until each holds at least ``at_least`` in its slice."""
    for region, c in enumerate(clients):
        for i in range(20):
            assert await book.deduct(c, region, budget_id, f"{budget_id}-p{region}-{i}", 5) == OK

    async def held() -> bool:
        return all([await held_here(c, budget_id) >= at_least for c in clients])

    await eventually(held, 20, f"every agent should hold at least {at_least}")


async def test_agents_serve_through_a_center_outage_and_then_reconcile(
    redis_url: str, database_url: str, tmp_path: Path, budget_id: str
) -> None:
    port = free_port()
    settings = center_settings(redis_url, database_url, grpc_port=port)
    center = CenterThread(settings).start()
    target = f"127.0.0.1:{port}"
    agents = start_agents(target, tmp_path, ("eu", "us", "ap"))
    clients = [Client(a.target) for a in agents]
    admin = Client(target)
    book = Book()
    try:
        await create(admin, budget_id, 1_000_000, sub_buckets=2)
        await _prime(clients, budget_id, book, at_least=100)
        center.stop()
        # The center is gone: each agent still serves from its slice.
        for region, c in enumerate(clients):
            for i in range(20):
                code = await book.deduct(c, region, budget_id, f"{budget_id}-out{region}-{i}", 4)
                assert code == OK, f"region {region} refused while holding a slice"
        # A request its slice cannot cover needs the center: UNAVAILABLE, nothing remembered.
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await clients[0].quota.Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-big", amount=900_000)
            )
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        # The center comes back on the same address: the agents reconnect and report.
        center = CenterThread(settings).start()
        await admin.close()
        admin = Client(target)  # a fresh channel: the old one backs off after the outage

        async def reported() -> bool:
            return (await get(admin, budget_id)).consumed == book.served

        await eventually(reported, 15, "the agents' usage should reach the restarted center")
        b = await get(admin, budget_id)
        assert (b.consumed, b.in_doubt) == (book.served, 0)
        await assert_balanced(admin, budget_id)
    finally:
        await stop_all([*clients, admin], agents, center)


async def test_a_killed_agent_s_balance_is_in_doubt_until_it_restarts_and_reports(
    redis_url: str, database_url: str, tmp_path: Path, budget_id: str
) -> None:
    settings = center_settings(
        redis_url,
        database_url,
        agent_lease_ms=1_500,
        agent_lease_skew_ms=300,
        agent_heartbeat_ms=200,
        agent_expiry_interval_ms=100,
    )
    center = CenterThread(settings).start()
    admin = Client(center.target)
    port = free_port()
    target = f"127.0.0.1:{port}"
    journal = tmp_path / "eu.journal"
    agent_id = f"eu-{uuid.uuid4().hex[:6]}"
    proc = await agent_process(journal, center.target, agent_id, port)
    book = Book()
    try:
        total = 100_000
        await create(admin, budget_id, total, sub_buckets=2)
        client = Client(target)
        try:
            await _prime([client], budget_id, book, at_least=50)
            for i in range(10):  # served from the slice, not reported yet at the kill
                assert await book.deduct(client, 0, budget_id, f"{budget_id}-k{i}", 3) == OK
        finally:
            await client.close()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

        # After lease + skew its balance is in doubt: counted as spent, never re-issued.
        async def in_doubt() -> bool:
            return (await get(admin, budget_id)).in_doubt > 0

        await eventually(in_doubt, 20, "the killed agent's balance should go in doubt")
        b = await get(admin, budget_id)
        assert b.consumed + b.in_doubt >= book.served
        assert b.available == total - b.consumed - b.in_doubt
        await assert_balanced(admin, budget_id)

        # Restarted with the same id and journal, it reports what it spent; the doubt is settled.
        proc = await agent_process(journal, center.target, agent_id, port)

        async def settled() -> bool:
            b = await get(admin, budget_id)
            return b.in_doubt == 0 and b.consumed == book.served

        await eventually(settled, 30, "the restarted agent should settle its doubt")
        await assert_balanced(admin, budget_id)
    finally:
        proc.kill()
        proc.wait(10)
        await admin.close()
        center.stop()
