from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from support.center import CenterThread, Client


@pytest.fixture
async def client(center: CenterThread) -> AsyncIterator[Client]:
    c = Client(center.target)
    yield c
    await c.close()


@pytest.fixture
def budget_id() -> str:
    return f"ab-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def agent_id() -> str:
    return f"ag-{uuid.uuid4().hex[:8]}"
