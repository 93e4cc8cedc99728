"""CreateBudget edges: times outside what a Timestamp may hold, a budget's own agent lease, and
the largest slices a policy may ask for."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2 as apb
from quota_rules.limits import MAX_AMOUNT
from quota_rules.policy import MAX_LEASE_MS
from tests.helpers.calls import create
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage


@pytest.mark.parametrize("field", ["valid_from", "valid_until"])
@pytest.mark.parametrize("seconds", [-(10**12), 10**12])
async def test_a_time_out_of_range_is_invalid_argument(
    client: Client, budget_id: str, field: str, seconds: int
) -> None:
    request = apb.CreateBudgetRequest(budget_id=budget_id, total=100, **{field: Timestamp(seconds=seconds)})
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.CreateBudget(request)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_budgets_lease_is_the_one_agents_get(
    center: CenterThread, client: Client, budget_id: str
) -> None:
    other = f"{budget_id}-default"
    await create(client, budget_id, 10_000, sub_buckets=1, max_slice=100, lease_ms=45_000)
    await create(client, other, 10_000, sub_buckets=1, max_slice=100)
    budget = (await client.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))).budget
    assert budget.policy.lease_ms == 45_000
    s = Stream(center.target, f"ag-{budget_id}")
    try:
        welcome = await s.hello()
        own = await s.grant(budget_id, "r1", usage(budget_id, 1), needed=10)
        default = await s.grant(other, "r2", usage(other, 1), needed=10)
        assert own.holding.lease_ms == 45_000
        assert default.holding.lease_ms == welcome.lease_ms != 45_000
        lease = await s.heartbeat(usage(budget_id, 2), usage(other, 2))
        assert {h.budget_id: h.lease_ms for h in lease.holdings} == {
            budget_id: 45_000,
            other: welcome.lease_ms,
        }
    finally:
        await s.close()


async def test_a_lease_beyond_a_week_is_refused(client: Client, budget_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(client, budget_id, 100, lease_ms=MAX_LEASE_MS + 1)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "lease_ms" in (refused.value.details() or "")


async def test_the_largest_slices_are_accepted(client: Client, budget_id: str) -> None:
    created = await create(
        client, budget_id, MAX_AMOUNT, sub_buckets=4, min_slice=MAX_AMOUNT, max_slice=MAX_AMOUNT
    )
    assert created.policy.scarcity_threshold == MAX_AMOUNT
    assert created.policy.central_threshold == MAX_AMOUNT
    b = (await client.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))).budget
    assert b.total == MAX_AMOUNT
