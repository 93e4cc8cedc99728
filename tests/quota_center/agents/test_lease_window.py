"""An agent's lease never outlives the budget's validity window: every grant and renewal is cut
at ``valid_until``, so an agent cannot serve from its slice after the window closed."""

from __future__ import annotations

import time
import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2 as apb
from tests.helpers.calls import OK
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage


async def test_grants_and_renewals_end_with_the_window(
    center: CenterThread, client: Client, budget_id: str
) -> None:
    until_ms = int(time.time() * 1000) + 3_000
    until = Timestamp()
    until.FromMilliseconds(until_ms)
    created = await client.admin.CreateBudget(
        apb.CreateBudgetRequest(
            budget_id=budget_id,
            unit="u",
            total=10_000,
            valid_until=until,
            policy=apb.SlicePolicy(sub_buckets=2),
        )
    )
    assert created.code == OK, created
    s = Stream(center.target, f"ag-{uuid.uuid4().hex[:8]}")
    try:
        await s.hello()
        asked = int(time.time() * 1000)
        g = await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)
        assert g.amount > 0
        assert 0 < g.holding.lease_ms <= until_ms - asked, g.holding
        lease = await s.heartbeat(usage(budget_id, 1, consumed=1))
        (h,) = lease.holdings
        assert 0 < h.lease_ms <= until_ms - asked
    finally:
        await s.close()
