"""Versioned SQL migrations for the ledger schema.

Files live in `migrations/` as `NNNN_name.sql`. Each version is applied in its own transaction
together with its `schema_migrations` row, so a crash leaves either the whole version or none.
Every transaction first takes a transaction-scoped advisory lock: two processes starting at once
queue up instead of both running the same DDL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from .errors import MigrationError

# Arbitrary constant shared by every process of the service ("quota" in ASCII).
MIGRATION_LOCK_KEY: Final = 0x71756F7461

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for item in resources.files("quota_center.ledger").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(item.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


async def migrate(conn: Any, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the missing migrations on `conn` (an asyncpg connection), oldest first.

    Returns the versions this call applied; [] when the schema was already current. Raises
    MigrationError if an applied version's file has changed since it was applied.
    """
    todo = load_migrations() if migrations is None else migrations
    applied: list[int] = []
    for migration in todo:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            # Under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide otherwise.
            await conn.execute(_CREATE_TABLE)
            checksum = await conn.fetchval(
                "SELECT checksum FROM schema_migrations WHERE version = $1", migration.version
            )
            if checksum is not None:
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} ({migration.name}) changed after it was applied"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.version)
    return applied
