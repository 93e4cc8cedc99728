"""Fixtures for the ledger store tests: a real PostgreSQL named by the `database_url` fixture."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from quota_center.ledger import LedgerStore

NewBudget = Callable[..., Awaitable[str]]


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN with `search_path` set, so every pooled connection lives in `schema`.

    asyncpg passes unknown DSN query parameters to the server as settings.
    """
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[LedgerStore]:
    store = await LedgerStore.open(database_url, max_size=4)
    yield store
    await store.close()


@pytest.fixture
async def new_budget(ledger: LedgerStore) -> NewBudget:
    """Create a budget with a fresh id and return the id; tests never share budgets."""

    async def make(total: int = 1_000) -> str:
        budget_id = f"t-{uuid.uuid4().hex}"
        row, created = await ledger.create_budget(
            budget_id,
            unit="USD-cent",
            total=total,
            policy={"min_slice": 10},
            sub_buckets=2,
            actor="test",
            reason="fixture",
        )
        assert created
        return row.budget_id

    return make


@pytest.fixture
async def schema_dsn(database_url: str) -> AsyncIterator[str]:
    """A DSN whose connections use a fresh, empty schema; dropped afterwards."""
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(database_url, schema)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()
