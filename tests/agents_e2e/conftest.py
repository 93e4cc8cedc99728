"""Three region agents in three regions next to a real center, Redis and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agent.support import AgentThread, agent_settings
from support.center import CenterThread, Client

REGIONS = ("eu", "us", "ap")


@pytest.fixture
def agents(center: CenterThread, tmp_path: Path) -> Iterator[list[AgentThread]]:
    tag = uuid.uuid4().hex[:6]
    running = [
        AgentThread(
            agent_settings(
                tmp_path / f"{region}.journal", center.target, agent_id=f"{region}-{tag}", region=region
            )
        ).start()
        for region in REGIONS
    ]
    yield running
    for a in running:
        a.stop()


@pytest.fixture
async def client(center: CenterThread) -> AsyncIterator[Client]:
    c = Client(center.target)
    yield c
    await c.close()


@pytest.fixture
def budget_id() -> str:
    return f"rb-{uuid.uuid4().hex[:12]}"
