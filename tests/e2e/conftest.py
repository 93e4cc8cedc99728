"""Three region agents in three regions next to a real center, Redis and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.center import CenterThread

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
