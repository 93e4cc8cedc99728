"""Migrations: versioned, recorded, idempotent, and safe when several processes start at once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from quota_center.ledger import LedgerStore, MigrationError, migrate
from quota_center.ledger.migrate import Migration, load_migrations

pytestmark = pytest.mark.integration


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r["tablename"] for r in rows}


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_migrate_applies_everything_once_then_nothing(schema_dsn: str) -> None:
    expected = [m.version for m in load_migrations()]
    conn = await asyncpg.connect(schema_dsn)
    try:
        assert await _tables(conn) == set()
        assert await migrate(conn) == expected
        assert await migrate(conn) == []
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in recorded] == expected
        assert [r["checksum"] for r in recorded] == [m.checksum for m in load_migrations()]
        assert {"budgets", "ledger", "schema_migrations"} <= await _tables(conn)
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_version_exactly_once(schema_dsn: str) -> None:
    expected = [m.version for m in load_migrations()]
    conns = [await asyncpg.connect(schema_dsn) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(v for applied in results for v in applied) == expected
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(expected)
    finally:
        for conn in conns:
            await conn.close()


async def test_stores_opening_at_once_on_an_empty_schema_all_work(schema_dsn: str) -> None:
    stores = await asyncio.gather(*(LedgerStore.open(schema_dsn, max_size=2) for _ in range(4)))
    try:
        for i, store in enumerate(stores):
            _, created = await store.create_budget(
                f"open-{i}", unit="item", total=5, policy={}, sub_buckets=1
            )
            assert created
    finally:
        for store in stores:
            await store.close()


async def test_an_edited_applied_migration_is_refused(schema_dsn: str) -> None:
    first = load_migrations()[0]
    conn = await asyncpg.connect(schema_dsn)
    try:
        await migrate(conn)
        edited = Migration(first.version, first.name, first.sql + "\n-- edited later\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, [edited])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_no_trace(schema_dsn: str) -> None:
    good = Migration(1, "good", "CREATE TABLE good_one (x int)")
    bad = Migration(2, "bad", "CREATE TABLE half_done (x int); SELECT 1 / 0;")
    conn = await asyncpg.connect(schema_dsn)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, [good, bad])
        assert await _tables(conn) == {"good_one", "schema_migrations"}
        assert await conn.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
        # Fixed version 2 applies on the next start; version 1 is not re-run.
        fixed = Migration(2, "bad", "CREATE TABLE half_done (x int)")
        assert await migrate(conn, [good, fixed]) == [2]
    finally:
        await conn.close()
