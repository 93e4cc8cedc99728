"""Fixtures of the reservation tests: the center's ``client`` and ``budget_id`` (as in
tests/center), and ``local``: a second center process in the test's own event loop, on the same
Redis and PostgreSQL, whose clock the test sets, so that "after the TTL" needs no sleeping and the
running center's expiry loop (which sweeps on the real clock) cannot get there first."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from quota_center.buckets.client import connect
from quota_center.buckets.reservations import ReservationStore
from quota_center.buckets.store import BucketStore
from quota_center.budgets.activity import Activity
from quota_center.budgets.registry import Registry
from quota_center.ledger.store import LedgerStore
from quota_center.recovery.rebuild import Recovery
from quota_center.refill.cover import Replenisher
from quota_center.refill.locks import BudgetLocks
from quota_center.spending.expiry import Expiry
from quota_center.spending.reservations import Reservations
from quota_center.transfers.protocol import Transfers, now_ms
from tests.helpers.center import CenterThread


class Clock:
    """Real time, unless a test pins it with ``at``."""

    def __init__(self) -> None:
        self.at: int | None = None

    def __call__(self) -> int:
        return now_ms() if self.at is None else self.at


@dataclass
class Local:
    reservations: Reservations
    expiry: Expiry
    clock: Clock


@pytest.fixture(scope="session")
async def local_center(center: CenterThread, redis_url: str, database_url: str) -> AsyncIterator[Local]:
    settings = center.settings
    ledger = await LedgerStore.open(database_url, max_size=4)
    redis = connect(redis_url)
    buckets = BucketStore(redis, settings.retention_s)
    registry = Registry(ledger)
    transfers = Transfers(buckets, ledger)
    store = ReservationStore(buckets)
    clock = Clock()
    reservations = Reservations(
        registry,
        store,
        Replenisher(buckets, transfers, ledger, BudgetLocks()),
        Recovery(registry, buckets, ledger),
        default_ttl_ms=settings.reservation_ttl_ms,
        max_ttl_ms=settings.reservation_max_ttl_ms,
        clock=clock,
    )

    # Tests sweep the budgets they name: this process's schedule is one nobody else writes.
    schedule = Activity(redis, buckets.scripts, f"local-{secrets.token_hex(4)}", clock=clock)
    yield Local(reservations, Expiry(registry, store, schedule, clock=clock), clock)
    await ledger.close()
    await redis.aclose()


@pytest.fixture
def local(local_center: Local) -> Local:
    local_center.clock.at = None
    return local_center
