"""The agent's readiness against a real center: ready once its session is open; without the center
still ready while it holds a slice it may spend, not once it holds none; not ready when its
journal is no longer the file a restart would read; alive throughout."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import RedisServer
from region_agent.readiness import Facts, ready, why_not
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.calls import create, deduct
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.regions import OK, eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize(
    ("journal", "session", "slices", "expected"),
    [
        (True, True, 0, True),
        (True, False, 1, True),
        (True, False, 0, False),
        (False, True, 3, False),
    ],
)
def test_the_decision(journal: bool, session: bool, slices: int, expected: bool) -> None:
    facts = Facts(journal_intact=journal, session_up=session, spendable_slices=slices)
    assert ready(facts) is expected
    assert (why_not(facts) == "") is expected


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


@pytest.mark.timeout(90)
async def test_readiness_follows_the_session_the_slices_and_the_journal(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path, budget_id: str
) -> None:
    center = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    journal = tmp_path / "agent.journal"
    agent = AgentThread(
        agent_settings(journal, center.target, agent_id=f"eu-{uuid.uuid4().hex[:6]}", health_interval_ms=50)
    ).start()
    admin, at_agent = Client(center.target), Client(agent.target)
    try:
        channel = at_agent.channel

        async def is_(status: int, service: str = "readiness") -> bool:
            return await _status(channel, service) == status

        await eventually(lambda: is_(SERVING), 10, "ready once the session with the center is open")
        await create(admin, budget_id, 1_000)
        assert (await deduct(at_agent, budget_id, f"{budget_id}-1", 1)).code == OK

        async def holds() -> bool:
            assert agent.agent is not None
            return agent.agent.agent.available(budget_id) > 0

        await eventually(holds, 10, "the agent should hold a slice")
        await admin.close()
        center.stop()
        # The center is gone, but the agent may still spend its slice: callers still get answers.
        assert await is_(SERVING)
        assert (await deduct(at_agent, budget_id, f"{budget_id}-2", 1)).code == OK
        # Its slice spent out: it could only refuse now.
        assert agent.agent is not None
        left = agent.agent.agent.available(budget_id)
        assert (await deduct(at_agent, budget_id, f"{budget_id}-3", left)).code == OK
        await eventually(lambda: is_(NOT_SERVING), 10, "not ready: no session, nothing to spend")
        assert await is_(SERVING, "liveness")
    finally:
        await admin.close()
        await at_agent.close()
        agent.stop()
        center.stop()


async def test_a_journal_replaced_under_the_agent_makes_it_not_ready(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path
) -> None:
    center = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    journal = tmp_path / "agent.journal"
    agent = AgentThread(
        agent_settings(
            journal,
            center.target,
            agent_id=f"eu-{uuid.uuid4().hex[:6]}",
            health_interval_ms=50,
            health_port=0,
        )
    ).start()
    at_agent = Client(agent.target)
    try:

        async def is_(status: int, service: str = "readiness") -> bool:
            return await _status(at_agent.channel, service) == status

        await eventually(lambda: is_(SERVING), 10, "ready once the session with the center is open")
        # The plaintext health port (probes speak no TLS) answers the same.
        assert agent.agent is not None
        assert agent.agent.health_listener is not None
        plain = grpc.aio.insecure_channel(f"127.0.0.1:{agent.agent.health_listener.port}")
        assert await _status(plain, "readiness") == SERVING
        journal.unlink()
        journal.write_bytes(b"")  # another file at the path: a restart would read this one
        await eventually(lambda: is_(NOT_SERVING), 10, "not ready once the journal is not its file")
        assert await is_(SERVING, "liveness")
        assert await _status(plain, "readiness") == NOT_SERVING
        await plain.close()
    finally:
        await at_agent.close()
        agent.stop()
        center.stop()
