"""Session messages a caller crafts cannot mint or move budget: every report is checked before it
changes anything, a refused one is answered with a SessionError while the stream's other messages
still get theirs, one agent id has one live stream, and a stream that never reads is closed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client import REGISTRY

from devstack.redis_server import RedisServer
from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from quota_rules.limits import MAX_AMOUNT
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.session_stream import Stream, usage


async def expect_error(s: Stream, *words: str) -> str:
    message = (await s.expect("error")).error.message
    for word in words:
        assert word in message, message
    return message


async def assert_untouched(client: Client, budget_id: str, total: int, consumed: int = 0) -> None:
    b = await get(client, budget_id)
    assert (b.consumed, b.available + b.reserved + b.in_doubt + b.consumed) == (consumed, total), b
    report = await assert_balanced(client, budget_id)
    assert all(h.balance >= 0 for h in report.holders), report


async def test_a_return_without_its_deduction_mints_nothing(
    center: CenterThread, client: Client, budget_id: str, agent_id: str
) -> None:
    await create(client, budget_id, 1_000, sub_buckets=1, max_slice=100)
    s = Stream(center.target, agent_id)
    try:
        await s.hello()
        g = await s.grant(budget_id, "r1", usage(budget_id, 1), needed=100)
        assert (g.code, g.amount) == (pb.RESULT_CODE_OK, 100), g
        await s.send(spb.AgentMessage(usage=usage(budget_id, 2, consumed=0, returned=5_000)))
        await expect_error(s, "INVALID_ARGUMENT", "returned 5000 exceeds consumed 0")
        h = await s.report(usage(budget_id, 2))
        assert h.balance == 100
        await assert_untouched(client, budget_id, 1_000)
    finally:
        await s.close()


async def test_returns_beyond_what_the_holding_consumed_are_not_credited(
    center: CenterThread, client: Client, budget_id: str, agent_id: str
) -> None:
    """A first report that claims a past of a million consumed, then refunds it: the refund
    passes the report's own rule (returned <= consumed) but the holding never consumed it."""
    await create(client, budget_id, 1_000, sub_buckets=1, max_slice=100)
    s = Stream(center.target, agent_id)
    try:
        await s.hello(usage(budget_id, 1, consumed=1_000_000))
        g = await s.grant(budget_id, "r1", usage(budget_id, 1, consumed=1_000_000), needed=100)
        assert g.amount == 100
        h = await s.report(usage(budget_id, 2, consumed=1_000_030, returned=1_000_000))
        # 30 consumed by this holding, and refunded: only those 30 come back.
        assert h.balance == 100
        await assert_untouched(client, budget_id, 1_000)
        h = await s.report(usage(budget_id, 3, consumed=1_000_070, returned=1_000_000))
        assert h.balance == 60
        await assert_untouched(client, budget_id, 1_000, consumed=40)
    finally:
        await s.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"returned": 2**63 - 1},
        {"consumed": 2**60, "returned": 2**60 - 900},
        {"consumed": MAX_AMOUNT + 1},
        {"seq": 2**62, "consumed": 1},
        {"consumed": -5},
        {"reserved": -1},
        {"released": -10},
        {"consumed": MAX_AMOUNT, "reserved": 1},
    ],
)
async def test_counters_out_of_range_are_refused(
    center: CenterThread, client: Client, budget_id: str, agent_id: str, fields: dict[str, int]
) -> None:
    await create(client, budget_id, 1_000, sub_buckets=1, max_slice=100)
    s = Stream(center.target, agent_id)
    try:
        await s.hello()
        await s.grant(budget_id, "r1", usage(budget_id, 1), needed=100)
        report = {"seq": 2, **fields}
        await s.send(spb.AgentMessage(usage=usage(budget_id, **report)))
        await expect_error(s, "INVALID_ARGUMENT", budget_id)
        assert (await s.report(usage(budget_id, 2))).balance == 100
        await assert_untouched(client, budget_id, 1_000)
        listed = await client.admin.ListBudgets(apb.ListBudgetsRequest())
        assert budget_id in {b.budget_id for b in listed.budgets}
    finally:
        await s.close()


async def test_one_bad_report_in_a_heartbeat_or_hello_loses_none_of_the_others(
    center: CenterThread, client: Client, budget_id: str, agent_id: str
) -> None:
    other = f"{budget_id}-2"
    for b in (budget_id, other):
        await create(client, b, 1_000, sub_buckets=1, max_slice=100)
    s = Stream(center.target, agent_id)
    try:
        welcome = await s.hello(usage(budget_id, 1), usage(other, 1, consumed=-1))
        assert [h.budget_id for h in welcome.holdings] == [budget_id]
        await expect_error(s, "INVALID_ARGUMENT", "consumed -1")
        await s.grant(other, "r1", usage(other, 1), needed=100)
        await s.send(
            spb.AgentMessage(
                heartbeat=spb.Heartbeat(
                    sent_at_ms=1, usage=[usage(budget_id, 2, reserved=-3), usage(other, 2, consumed=10)]
                )
            )
        )
        answers = {m.WhichOneof("body"): m for m in [await s.call.read(), await s.call.read()]}
        assert "reserved -3" in answers["error"].error.message
        assert [(h.budget_id, h.balance) for h in answers["lease"].lease.holdings] == [(other, 90)]
    finally:
        await s.close()


async def test_bytes_that_are_no_message_get_an_error_and_the_stream_goes_on(
    center: CenterThread, agent_id: str
) -> None:
    channel = grpc.aio.insecure_channel(center.target)
    call = channel.stream_stream(
        "/quota.v1.AgentSession/Session",
        request_serializer=lambda b: b,
        response_deserializer=spb.CenterMessage.FromString,
    )()
    try:
        await call.write(spb.AgentMessage(hello=spb.Hello(agent_id=agent_id)).SerializeToString())
        assert (await call.read()).WhichOneof("body") == "welcome"
        await call.write(b"\xff\xff\xff\xff")
        answer = await asyncio.wait_for(call.read(), 10)
        assert answer.WhichOneof("body") == "error"
        assert "not a session message" in answer.error.message
        await call.write(spb.AgentMessage(heartbeat=spb.Heartbeat(sent_at_ms=7)).SerializeToString())
        assert (await asyncio.wait_for(call.read(), 10)).lease.sent_at_ms == 7
        await call.done_writing()
        assert await call.code() is grpc.StatusCode.OK
    finally:
        await channel.close()


async def test_a_live_agent_id_cannot_be_taken_over(center: CenterThread, agent_id: str) -> None:
    first = Stream(center.target, agent_id)
    await first.hello()
    intruder = Stream(center.target, agent_id)
    try:
        await intruder.send(spb.AgentMessage(hello=spb.Hello(agent_id=agent_id)))
        await expect_error(intruder, "connected already")
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await intruder.call.read()
        assert ended.value.code() is grpc.StatusCode.ALREADY_EXISTS
        assert (await first.heartbeat()).sent_at_ms == 1  # the first one is still served
    finally:
        await intruder.channel.close()
        await first.close()
    # Once the first is gone, the id is free.
    for _ in range(50):
        again = Stream(center.target, agent_id)
        await again.send(spb.AgentMessage(hello=spb.Hello(agent_id=agent_id)))
        kind = (await asyncio.wait_for(again.call.read(), 10)).WhichOneof("body")
        await again.channel.close()
        if kind == "welcome":
            break
        await asyncio.sleep(0.1)  # the first stream's end is still on its way
    assert kind == "welcome"


async def read_to_the_end(s: Stream) -> None:
    while await asyncio.wait_for(s.call.read(), 10) is not grpc.aio.EOF:
        pass


def ends(reason: str) -> float:
    return REGISTRY.get_sample_value("quota_agent_session_ends_total", {"reason": reason}) or 0.0


@pytest.fixture
def small_outbox_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    with CenterThread(center_settings(fresh_redis.url, database_url, agent_session_max_unread=32)) as c:
        yield c


async def test_a_session_that_never_reads_is_closed(small_outbox_center: CenterThread, agent_id: str) -> None:
    # No window growth on this side: what the center sends piles up there once 64 KiB wait here.
    s = Stream(small_outbox_center.target, agent_id, options=[("grpc.http2.bdp_probe", 0)])
    await s.hello()
    before = ends("unread")
    sent, write_failed = 0, False
    try:
        while ends("unread") == before and sent < 100_000:
            for _ in range(500):
                await s.send(spb.AgentMessage())  # each answered with a SessionError
            sent += 500
            await asyncio.sleep(0)
    except grpc.aio.AioRpcError:
        write_failed = True  # the center ended the stream while this side was still writing
    try:
        for _ in range(100):
            if ends("unread") > before:
                break
            await asyncio.sleep(0.1)
        assert ends("unread") == before + 1, f"still open after {sent} unread answers"
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await read_to_the_end(s)
        if not write_failed:  # else grpc reports the failed write (INTERNAL) in its place
            assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "unread" in (ended.value.details() or "")
    finally:
        await s.channel.close()
