"""The agent's session client against a scripted peer speaking the center's session protocol.

The peer is a real gRPC server that plays the center's side of ``AgentSession`` (and answers
forwarded ``Quota`` calls) from the test's script: it checks what the agent sends and when,
not how the center books it (end-to-end tests with the real center do that).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc, session_pb2_grpc
from quota.v1 import session_pb2 as spb
from region_agent.server import RunningAgent, start
from tests.helpers.agent import AgentClient, agent_settings

Context = grpc.aio.ServicerContext[Any, Any]


class ScriptedCenter(session_pb2_grpc.AgentSessionServicer, quota_pb2_grpc.QuotaServicer):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[spb.AgentMessage] = asyncio.Queue()
        self.outbox: asyncio.Queue[spb.CenterMessage | None] = asyncio.Queue()
        self.holdings: list[spb.AgentHolding] = []
        self.streams = 0
        self.deducts: list[pb.DeductRequest] = []

    async def Session(self, request_iterator: Any, context: Context) -> AsyncIterator[spb.CenterMessage]:
        self.streams += 1
        hello = await anext(request_iterator)
        self.inbox.put_nowait(hello)
        yield spb.CenterMessage(
            welcome=spb.Welcome(
                session_id=f"s{self.streams}", lease_ms=60_000, heartbeat_ms=50, holdings=self.holdings
            )
        )

        async def read() -> None:
            async for message in request_iterator:
                self.inbox.put_nowait(message)

        reader = asyncio.create_task(read())
        try:
            while (message := await self.outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()

    async def Deduct(self, request: pb.DeductRequest, context: Context) -> pb.DeductResponse:
        self.deducts.append(request)
        return pb.DeductResponse(
            code=pb.RESULT_CODE_OK,
            budget_id=request.budget_id,
            request_id=request.request_id,
            amount=request.amount,
        )

    async def next(self, kind: str) -> spb.AgentMessage:
        """The next message of ``kind`` from the agent, skipping others (heartbeats, mostly)."""
        async with asyncio.timeout(5):
            while True:
                message = await self.inbox.get()
                if message.WhichOneof("body") == kind:
                    return message


def grant_holding(
    budget_id: str, version: int, balance: int, applied: spb.Usage | None = None
) -> spb.AgentHolding:
    return spb.AgentHolding(
        budget_id=budget_id,
        version=version,
        balance=balance,
        applied=applied or spb.Usage(budget_id=budget_id),
        lease_ms=60_000,
        mode=pb.MODE_NORMAL,
        state=pb.BUDGET_STATE_ACTIVE,
    )


@pytest.fixture
async def center() -> AsyncIterator[tuple[ScriptedCenter, str]]:
    scripted = ScriptedCenter()  # type: ignore[abstract]  # serves only what the agent calls
    server = grpc.aio.server()
    session_pb2_grpc.add_AgentSessionServicer_to_server(scripted, server)
    quota_pb2_grpc.add_QuotaServicer_to_server(scripted, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield scripted, f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def agent(center: tuple[ScriptedCenter, str], tmp_path: Path) -> AsyncIterator[RunningAgent]:
    running = await start(
        agent_settings(tmp_path / "j", center[1], refill_interval_ms=20, release_idle_ms=60_000),
        metrics=False,
    )
    yield running
    await running.stop(0)


async def test_a_welcomed_agent_serves_from_its_slice_and_reports_usage(
    center: tuple[ScriptedCenter, str], tmp_path: Path
) -> None:
    scripted, target = center
    scripted.holdings = [grant_holding("b1", 1, 100)]
    running = await start(agent_settings(tmp_path / "j", target), metrics=False)
    client = AgentClient(f"127.0.0.1:{running.port}")
    try:
        hello = await scripted.next("hello")
        assert (hello.hello.agent_id, hello.hello.region) == ("agent-test", "test")
        await asyncio.wait_for(running.session.connected.wait(), 5)
        answer = await client.quota.Deduct(pb.DeductRequest(budget_id="b1", request_id="r1", amount=30))
        assert (answer.code, answer.amount) == (pb.RESULT_CODE_OK, 30)
        assert scripted.deducts == []  # served from the slice
        beat = await scripted.next("heartbeat")
        assert [(u.budget_id, u.consumed, u.seq) for u in beat.heartbeat.usage] == [("b1", 30, 1)]
        # The renewal answers that heartbeat: the lease runs from its send time.
        scripted.outbox.put_nowait(
            spb.CenterMessage(
                lease=spb.LeaseRenewal(
                    sent_at_ms=beat.heartbeat.sent_at_ms,
                    holdings=[grant_holding("b1", 2, 70, beat.heartbeat.usage[0])],
                )
            )
        )
        await asyncio.sleep(0.1)
        s = running.agent.get("b1")
        assert s is not None
        assert s.lease_deadline == beat.heartbeat.sent_at_ms + 60_000
        assert running.agent.available("b1") == 70
        balance = await client.quota.Deduct(pb.DeductRequest(budget_id="b1", request_id="r2", amount=71))
        assert balance.code == pb.RESULT_CODE_OK
        assert [d.request_id for d in scripted.deducts] == ["r2"]  # 71 > 70: forwarded
    finally:
        await client.close()
        await running.stop(0)
    # A restarted agent says what it spent in its Hello.
    running = await start(agent_settings(tmp_path / "j", target), metrics=False)
    try:
        hello = await scripted.next("hello")
        assert [(u.budget_id, u.consumed, u.seq) for u in hello.hello.usage] == [("b1", 30, 1)]
    finally:
        await running.stop(0)


async def test_a_reclaim_order_is_answered_at_once(
    center: tuple[ScriptedCenter, str], agent: RunningAgent
) -> None:
    scripted, _ = center
    await scripted.next("hello")
    scripted.outbox.put_nowait(
        spb.CenterMessage(grant=spb.Grant(budget_id="b1", holding=grant_holding("b1", 1, 50)))
    )
    await asyncio.sleep(0.05)
    scripted.outbox.put_nowait(
        spb.CenterMessage(
            reclaim=spb.ReclaimOrder(order_id="o1", budget_id="b1", amount=80, deadline_ms=1000)
        )
    )
    answer = (await scripted.next("reclaim_answer")).reclaim_answer
    assert (answer.order_id, answer.budget_id, answer.released) == ("o1", "b1", 50)
    assert (answer.usage.released, answer.usage.seq) == (50, 1)
    assert agent.agent.available("b1") == 0


async def test_a_budget_first_met_by_a_caller_gets_a_slice(
    center: tuple[ScriptedCenter, str], agent: RunningAgent
) -> None:
    scripted, _ = center
    await scripted.next("hello")
    await asyncio.wait_for(agent.session.connected.wait(), 5)
    client = AgentClient(f"127.0.0.1:{agent.port}")
    try:
        first = await client.quota.Deduct(pb.DeductRequest(budget_id="new", request_id="n1", amount=7))
        assert first.code == pb.RESULT_CODE_OK
        ask = (await scripted.next("slice_request")).slice_request
        assert (ask.budget_id, ask.needed) == ("new", 7)
        assert ask.observed_rate > 0
        scripted.outbox.put_nowait(
            spb.CenterMessage(
                grant=spb.Grant(
                    budget_id="new",
                    request_id=ask.request_id,
                    amount=100,
                    code=pb.RESULT_CODE_OK,
                    holding=grant_holding("new", 1, 100),
                )
            )
        )
        await asyncio.sleep(0.1)
        second = await client.quota.Deduct(pb.DeductRequest(budget_id="new", request_id="n2", amount=7))
        assert second.code == pb.RESULT_CODE_OK
        assert [d.request_id for d in scripted.deducts] == ["n1"]
        again = await client.quota.Deduct(pb.DeductRequest(budget_id="new", request_id="n1", amount=7))
        assert (again.code, again.amount) == (pb.RESULT_CODE_EXISTS, 7)  # remembered: no second call
        assert len(scripted.deducts) == 1
    finally:
        await client.close()


async def test_a_dropped_stream_is_reopened(center: tuple[ScriptedCenter, str], agent: RunningAgent) -> None:
    scripted, _ = center
    await scripted.next("hello")
    scripted.outbox.put_nowait(None)  # the center ends the stream
    await scripted.next("hello")
    assert scripted.streams == 2
