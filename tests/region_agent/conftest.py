from __future__ import annotations

import pytest

from region_agent.core.agent import Agent, Config
from region_agent.storage.journal import MemoryJournal
from tests.helpers.holdings import holding


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def agent(journal: MemoryJournal) -> Agent:
    """An agent holding 100 of budget b1 under a lease from t=0 to t=60 s."""
    a = Agent(journal, Config(retention_ms=10_000, max_records=1000))
    a.adopt(holding(), sent_at=0)
    return a
