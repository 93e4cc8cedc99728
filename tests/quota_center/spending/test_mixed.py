"""No oversell under deductions, returns, reserves, confirms, cancels and expiries mixed together,
on a single Redis; audited after every phase (tests/support/mixed.py)."""

from __future__ import annotations

from tests.helpers.center import Client
from tests.helpers.mixed import run_mixed


async def test_a_mixed_workload_never_oversells_and_drains_to_zero(client: Client, budget_id: str) -> None:
    book = await run_mixed(client, budget_id, total=6_007, sub_buckets=4, seed=20261129)
    print(
        f"\nreturned {book.returned}, {len(book.ended)} reservations ended ({book.expired} expired), peak {book.peak}"
    )
    assert book.returned > 0, "the mix included returns"
    assert book.expired > 0, "the mix included expiries"
    assert len(book.ended) > book.expired, "the mix included confirms and cancels"
