"""A retry the center never served, of a budget an agent holds: the center asks the agent; when
the agent cannot be asked (its session is gone, its lease still running) the retry is answered
UNAVAILABLE, never served on a guess."""

from __future__ import annotations

import uuid

import grpc
import pytest

from quota.v1 import common_pb2 as pb
from quota_rules.retries import RETRY_METADATA
from tests.helpers.calls import OK, assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage


async def test_a_retry_an_unreachable_agent_may_have_served_is_not_served(
    center: CenterThread, client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 10_000, sub_buckets=2, max_slice=500)
    s = Stream(center.target, f"ag-{uuid.uuid4().hex[:8]}")
    await s.hello()
    assert (await s.grant(budget_id, "r", usage(budget_id, 0), rate=1_000)).amount > 0
    await s.close()  # gone, lease running: it may have served anything meanwhile
    before = await get(client, budget_id)
    request = pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-r", amount=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.quota.Deduct(request, metadata=RETRY_METADATA)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "may have served it" in (info.value.details() or "")
    assert (await get(client, budget_id)).consumed == before.consumed
    # A first attempt (not marked) is served as usual.
    assert (await client.quota.Deduct(request)).code == OK
    await assert_balanced(client, budget_id)
