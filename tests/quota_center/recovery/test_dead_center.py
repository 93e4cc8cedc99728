"""A center that died before writing its spend log: what the lost sub-buckets held beyond their
logged consumption stays in doubt (bounded stranding) until an operator settles it by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest

from devstack import RedisServer
from quota.v1 import admin_pb2 as apb
from quota_rules.limits import MAX_AMOUNT
from tests.helpers.calls import CONFLICT, EXISTS, OK, assert_balanced, create, deduct
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.recovery import doubt_holders, settle


@pytest.fixture
def quick_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    # Lookups after the rebuild wait for the ghost only briefly.
    c = CenterThread(center_settings(fresh_redis.url, database_url, recall_gate_ms=200)).start()
    yield c
    c.stop()


@pytest.fixture
async def ghost(quick_center: CenterThread, database_url: str) -> AsyncIterator[str]:
    """Another center, registered a moment ago and alive, that has written nothing since: as far as
    anyone can tell, it may have served requests it has not logged."""
    instance_id = f"ghost-{uuid.uuid4().hex}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            INSERT INTO center_instances (instance_id, name, started_at, seen_at, flushed_until)
            VALUES ($1, 'ghost', now() - interval '1 second', now(), now() - interval '1 second')
            """,
            instance_id,
        )
        yield instance_id
        # A clean stop, so that it holds back no other test's settlement.
        await conn.execute(
            "UPDATE center_instances SET stopped_at = now() WHERE instance_id = $1", instance_id
        )
    finally:
        await conn.close()


async def settle_by_hand(client: Client, budget_id: str, holder: str, consumed: int) -> apb.SettleResponse:
    request = apb.SettleRequest(
        budget_id=budget_id, holder=holder, consumed=consumed, actor="oncall", reason="ghost served nothing"
    )
    return await client.admin.Settle(request)


async def test_a_dead_center_keeps_the_rest_in_doubt_until_settled_by_hand(
    ghost: str, quick_center: CenterThread, fresh_redis: RedisServer, budget_id: str
) -> None:
    client = Client(quick_center.target)
    total = 50_000
    await create(client, budget_id, total, sub_buckets=2, min_slice=1_000, max_slice=1_000)
    served = 0
    for i in range(20):
        r = await deduct(client, budget_id, f"{budget_id}-{i}", 7 + i)
        assert r.code == OK
        served += r.amount
    fresh_redis.command("FLUSHALL")
    assert (await deduct(client, budget_id, f"{budget_id}-after", 5)).code == OK  # rebuilds
    served += 5

    assert settle(quick_center, budget_id) == 2  # the ghost holds both holders back
    holders = {h.holder: h for h in doubt_holders(quick_center, budget_id)}
    assert set(holders) == {"doubt:sub:0@1", "doubt:sub:1@1"}
    # What the log shows consumed is booked already; the rest of the slices stays in doubt.
    assert sum(h.booked for h in holders.values()) == served - 5
    assert all(h.released is None and h.balance == 1_000 - h.booked for h in holders.values())
    report = await assert_balanced(client, budget_id)
    assert report.consumed == served
    assert report.in_doubt == 2_000 - (served - 5)
    assert {h.holder: h.in_doubt for h in report.holders if h.in_doubt} == {
        name: h.balance for name, h in holders.items()
    }

    # Before settling, the operator asks what is known (a dry run changes nothing).
    for name, h in holders.items():
        known = await client.admin.Settle(apb.SettleRequest(budget_id=budget_id, holder=name, dry_run=True))
        assert (known.in_doubt, known.booked, known.logged) == (h.balance, h.booked, h.booked), known
        assert not known.log_complete
        assert "center ghost" in known.waiting_for
        assert (known.at_least, known.at_most) == (0, h.balance)
    assert {h.holder: h for h in doubt_holders(quick_center, budget_id)} == holders

    # The operator knows better: the ghost consumed 3 of what sub-bucket 0 held, nothing of 1's.
    first, second = sorted(holders)
    s = await settle_by_hand(client, budget_id, first, 3)
    assert (s.code, s.holder, s.consumed, s.returned_to_main) == (OK, first, 3, holders[first].balance - 3)
    assert s.settled == holders[first].balance
    again = await settle_by_hand(client, budget_id, first, 3)
    assert (again.code, again.settled, again.consumed, again.returned_to_main) == (
        EXISTS,
        s.settled,
        3,
        s.returned_to_main,
    )
    assert (await settle_by_hand(client, budget_id, first, 4)).code == CONFLICT
    s = await settle_by_hand(client, budget_id, second, 0)
    assert (s.code, s.consumed, s.returned_to_main) == (OK, 0, holders[second].balance)

    report = await assert_balanced(client, budget_id)
    assert (report.in_doubt, report.consumed) == (0, served + 3)
    assert report.main + report.held + report.in_flight == total - served - 3
    assert settle(quick_center, budget_id) == 0
    await client.close()


async def test_settle_refuses_bad_input_and_changes_nothing(
    ghost: str, quick_center: CenterThread, fresh_redis: RedisServer, budget_id: str
) -> None:
    client = Client(quick_center.target)
    await create(client, budget_id, 10_000, sub_buckets=1, min_slice=500, max_slice=500)
    assert (await deduct(client, budget_id, f"{budget_id}-0", 100)).code == OK
    fresh_redis.command("FLUSHALL")
    assert (await deduct(client, budget_id, f"{budget_id}-1", 1)).code == OK
    settle(quick_center, budget_id)
    holder = "doubt:sub:0@1"
    before = await assert_balanced(client, budget_id)
    assert before.in_doubt == 400

    cases = [
        ((budget_id, holder, -1), grpc.StatusCode.INVALID_ARGUMENT),
        ((budget_id, holder, 401), grpc.StatusCode.INVALID_ARGUMENT),  # more than is in doubt
        ((budget_id, holder, MAX_AMOUNT + 1), grpc.StatusCode.INVALID_ARGUMENT),
        ((budget_id, "", 0), grpc.StatusCode.INVALID_ARGUMENT),
        ((budget_id, "x" * 300, 0), grpc.StatusCode.INVALID_ARGUMENT),
        (("bad budget!", holder, 0), grpc.StatusCode.INVALID_ARGUMENT),
        ((budget_id, "doubt:sub:7@1", 0), grpc.StatusCode.NOT_FOUND),
        ((budget_id, "sub:0", 0), grpc.StatusCode.NOT_FOUND),
        ((f"{budget_id}-none", holder, 0), grpc.StatusCode.NOT_FOUND),
    ]
    for (b, h, consumed), status in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await settle_by_hand(client, b, h, consumed)
        assert caught.value.code() == status, (b, h, consumed, caught.value.details())
        assert caught.value.details()
    after = await assert_balanced(client, budget_id)
    assert (after.in_doubt, after.consumed, after.main) == (before.in_doubt, before.consumed, before.main)
    assert (await settle_by_hand(client, budget_id, holder, 400)).code == OK  # all of it was consumed
    assert (await assert_balanced(client, budget_id)).consumed == before.consumed + 400
    await client.close()
