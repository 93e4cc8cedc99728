from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def agent_id() -> str:
    return f"ag-{uuid.uuid4().hex[:8]}"
