"""No oversell under deductions, returns, reserves, confirms, cancels and expiries mixed together,
on the 3-master Redis Cluster (8 sub-buckets over the shards); audited after every phase."""

from __future__ import annotations

from devstack import RedisCluster
from tests.helpers.center import Client
from tests.helpers.mixed import run_mixed


async def test_a_mixed_workload_never_oversells_on_the_cluster(
    client: Client, budget_id: str, healthy_cluster: RedisCluster
) -> None:
    book = await run_mixed(client, budget_id, total=8_009, sub_buckets=8, seed=20261130)
    print(
        f"\nreturned {book.returned}, {len(book.ended)} reservations ended ({book.expired} expired), peak {book.peak}"
    )
    assert book.returned > 0, "the mix included returns"
    assert book.expired > 0, "the mix included expiries"
    assert len(book.ended) > book.expired, "the mix included confirms and cancels"
