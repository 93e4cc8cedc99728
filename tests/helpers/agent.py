"""A real region agent on port 0, in a thread with its own event loop (like support.center.CenterThread),
so tests can call it while their own loop is busy, and run several agents next to a center."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from quota.v1 import quota_pb2_grpc
from region_agent.server import RunningAgent, start
from region_agent.settings import Settings
from tests.helpers import tls
from tests.helpers.threads import ServerThread


def agent_settings(journal_path: str | Path, center_target: str, **overrides: object) -> Settings:
    """Settings for a test agent: ports 0, a short drain, the journal where the test says; mutual
    TLS with a certificate for its agent id while tls.secured."""
    base = Settings(
        agent_id="agent-test",
        region="test",
        center_target=center_target,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        journal_path=str(journal_path),
        forward_deadline_ms=2000,
        reconnect_min_ms=50,
        reconnect_max_ms=500,
        drain_grace_s=0.5,
        shutdown_delay_ms=0,
    )
    secured = tls.active()
    if secured is not None:
        overrides = {**secured.agent(str(overrides.get("agent_id", base.agent_id))), **overrides}
    return replace(base, **overrides)  # type: ignore[arg-type]


class AgentThread(ServerThread[RunningAgent]):
    """``AgentThread(settings).start()``; ``.target`` for clients; ``.stop()`` drains it."""

    start_timeout_s = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"agent-{settings.agent_id}"
        super().__init__()

    @property
    def agent(self) -> RunningAgent | None:
        return self.server

    async def _open(self) -> RunningAgent:
        return await start(self.settings)


class AgentClient:
    """Async Quota stub on one channel to an agent."""

    def __init__(self, target: str) -> None:
        self.channel = tls.channel(target)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
