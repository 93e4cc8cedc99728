"""A hand-driven agent session for the center's tests: every message is written by the test."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from quota.v1 import session_pb2 as spb
from quota.v1 import session_pb2_grpc


def usage(
    budget_id: str, seq: int, consumed: int = 0, returned: int = 0, reserved: int = 0, released: int = 0
) -> spb.Usage:
    return spb.Usage(
        budget_id=budget_id,
        seq=seq,
        consumed=consumed,
        returned=returned,
        reserved=reserved,
        released=released,
    )


class Stream:
    def __init__(
        self, target: str, agent_id: str, region: str = "test", options: list[tuple[str, Any]] | None = None
    ) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=options)
        self.call: Any = session_pb2_grpc.AgentSessionStub(self.channel).Session()
        self.agent_id = agent_id
        self.region = region

    async def hello(self, *usages: spb.Usage) -> spb.Welcome:
        await self.send(
            spb.AgentMessage(hello=spb.Hello(agent_id=self.agent_id, region=self.region, usage=usages))
        )
        return (await self.expect("welcome")).welcome

    async def send(self, message: spb.AgentMessage) -> None:
        await self.call.write(message)

    async def expect(self, kind: str, within_s: float = 10.0) -> spb.CenterMessage:
        """The next message of ``kind``; any other kind fails the test (errors say why)."""
        message = await asyncio.wait_for(self.call.read(), within_s)
        assert message is not grpc.aio.EOF, f"stream ended while waiting for {kind}"
        got = message.WhichOneof("body")
        assert got == kind, f"expected {kind}, got {message}"
        return message

    async def grant(
        self, budget_id: str, request_id: str, u: spb.Usage, rate: int = 100, needed: int = 0
    ) -> spb.Grant:
        await self.send(
            spb.AgentMessage(
                slice_request=spb.SliceRequest(
                    budget_id=budget_id, request_id=request_id, needed=needed, observed_rate=rate, usage=u
                )
            )
        )
        return (await self.expect("grant")).grant

    async def heartbeat(self, *usages: spb.Usage) -> spb.LeaseRenewal:
        await self.send(spb.AgentMessage(heartbeat=spb.Heartbeat(sent_at_ms=1, usage=usages)))
        return (await self.expect("lease")).lease

    async def report(self, u: spb.Usage) -> spb.AgentHolding:
        await self.send(spb.AgentMessage(usage=u))
        return (await self.expect("holding")).holding

    async def close(self) -> None:
        await self.call.done_writing()
        await self.channel.close()
