"""The transport of the run is the one every part speaks: with mutual TLS, a plaintext caller
reaches neither the center nor an agent, and the agents still hold sessions with the center
(their slices serve) over it."""

from __future__ import annotations

import grpc

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from tests.helpers.agent import AgentThread
from tests.helpers.calls import create
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import eventually, held_here
from tests.helpers.tls import Tls


async def _plaintext_status(target: str, budget_id: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await quota_pb2_grpc.QuotaStub(channel).GetBalance(
                pb.GetBalanceRequest(budget_id=budget_id), timeout=3
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_every_part_speaks_the_transport_of_the_run(
    transport: Tls | None, center: CenterThread, agents: list[AgentThread], client: Client, budget_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=2)
    for target in [center.target, *(a.target for a in agents)]:
        expected = grpc.StatusCode.OK if transport is None else grpc.StatusCode.UNAVAILABLE
        assert await _plaintext_status(target, budget_id) == expected, target
    eu = Client(agents[0].target)
    try:
        for i in range(30):
            answer = await eu.quota.Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-r{i}", amount=2)
            )
            assert answer.code == pb.RESULT_CODE_OK

        async def sliced() -> bool:
            return await held_here(eu, budget_id) > 0

        await eventually(sliced, 10, "the agent should be granted a slice over its session")
    finally:
        await eu.close()
