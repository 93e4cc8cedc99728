"""A center of the filler's own, with a fast filler, on a database of its own.

The database is private so that the filler tends only these tests' budgets (it
tends every active budget of its ledger: budgets/activity.py). Deductions that find their sub-bucket short
are counted by wrapping the center's ``Replenisher.cover``, which the request path
calls exactly then.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from devstack import create_database, drop_database
from quota_center.budgets.registry import BudgetMeta
from tests.helpers.center import CenterThread, center_settings

FILL_INTERVAL_MS = 20
FILL_IDLE_MS = 500


@dataclass
class Waits:
    """(budget, sub-bucket) of every deduction that found its sub-bucket short."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    def count(self, budget_id: str, indices: set[int] | None = None) -> int:
        return sum(1 for b, i in self.calls if b == budget_id and (indices is None or i in indices))


@dataclass
class Running:
    center: CenterThread
    waits: Waits


def count_waits(running: CenterThread) -> Waits:
    assert running.center is not None
    replenisher = running.center.spending.replenisher
    cover = replenisher.cover
    waits = Waits()

    async def counting(
        meta: BudgetMeta, index: int, amount: int, *, pooled: bool = False, wait_until: float | None = None
    ) -> bool:
        waits.calls.append((meta.budget_id, index))
        return await cover(meta, index, amount, pooled=pooled, wait_until=wait_until)

    replenisher.cover = counting  # type: ignore[method-assign]
    return waits


@pytest.fixture(scope="module")
def filled(redis_url: str, database_url: str) -> Iterator[Running]:
    """A center whose filler runs every 20 ms and releases after 0.5 s idle."""
    name = f"qc_fill_{os.getpid()}_{secrets.token_hex(4)}"
    dsn = create_database(database_url, name)
    settings = center_settings(redis_url, dsn, fill_interval_ms=FILL_INTERVAL_MS, fill_idle_ms=FILL_IDLE_MS)
    running = CenterThread(settings).start()
    try:
        yield Running(running, count_waits(running))
    finally:
        running.stop()
        drop_database(database_url, name)


@pytest.fixture
def unfilled(redis_url: str, database_url: str) -> Iterator[Running]:
    """The same center without a filler: every refill waits for a deduction to find its sub-bucket short."""
    running = CenterThread(center_settings(redis_url, database_url, fill_interval_ms=0)).start()
    try:
        yield Running(running, count_waits(running))
    finally:
        running.stop()


@pytest.fixture
def serving(filled: Running) -> CenterThread:
    """The center this folder's ``client`` talks to."""
    return filled.center


@pytest.fixture
def budget_id() -> str:
    return f"f-{secrets.token_hex(6)}"
