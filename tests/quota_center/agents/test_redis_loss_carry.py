"""An agent's holding that a Redis loss took is carried over by the agent's next report, once:
what the agent says it still has stays its own, the rest is booked as consumed, and never more
than the ledger had granted it comes back, whatever the report claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack import RedisServer
from quota_rules.limits import MAX_AMOUNT
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.session_stream import Stream, usage


@pytest.fixture
def own_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    running = CenterThread(center_settings(fresh_redis.url, database_url)).start()
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("claimed", "kept"), [(30, 30), (MAX_AMOUNT, None)], ids=["honest", "claims-too-much"]
)
async def test_the_next_report_carries_the_lost_holding_over(
    own_center: CenterThread, fresh_redis: RedisServer, budget_id: str, claimed: int, kept: int | None
) -> None:
    client = Client(own_center.target)
    s = Stream(own_center.target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await create(client, budget_id, 10_000, sub_buckets=2, max_slice=500)
        await s.hello()
        g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        assert g.amount > 100
        await s.heartbeat(usage(budget_id, 1, consumed=40))
        fresh_redis.command("FLUSHALL")
        # It spent 20 more from its slice meanwhile and reserved 5: by its own account g - 65 is
        # left unreserved (the honest case reports a smaller number: 30, of its own choosing).
        u = usage(budget_id, 2, consumed=60, reserved=5)
        u.available = claimed
        held = await s.report(u)
        b = await get(client, budget_id)
        expected_kept = g.amount if kept is None else kept + 5
        assert held.balance == expected_kept - 5
        assert (b.in_doubt, b.reserved) == (0, 5)
        assert b.consumed == g.amount - expected_kept
        assert b.total == b.main + b.held + b.in_flight + b.reserved + b.in_doubt + b.consumed
        assert b.available <= 10_000 - b.consumed - b.reserved
        await assert_balanced(client, budget_id)
        # A second report carries nothing again.
        again = usage(budget_id, 3, consumed=60, reserved=5)
        again.available = claimed
        assert (await s.report(again)).balance == held.balance
        assert (await get(client, budget_id)).consumed == b.consumed
    finally:
        await s.close()
        await client.close()
