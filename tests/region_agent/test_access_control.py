"""Identity and roles at an agent's own listener, and the agent's certificate bound to its id,
over real mutual TLS to a real center (README, "Security")."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from region_agent.settings import SettingsError
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.calls import create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import eventually
from tests.helpers.tls import Tls, secured

OK = pb.RESULT_CODE_OK


async def _deduct(stub: quota_pb2_grpc.QuotaStub, budget_id: str, amount: int) -> pb.DeductResponse:
    request = pb.DeductRequest(budget_id=budget_id, request_id=secrets.token_hex(8), amount=amount)
    response: pb.DeductResponse = await stub.Deduct(request, timeout=10)
    return response


async def test_the_agent_serves_a_spender_its_own_budgets_only(
    tls: Tls, secure_center: CenterThread, tmp_path: Path, budget_id: str
) -> None:
    mine, other = f"shop-{budget_id}", f"other-{budget_id}"
    with secured(tls):
        admin = Client(secure_center.target)
        for b in (mine, other):
            await create(admin, b, 10_000, sub_buckets=2)
        settings = agent_settings(
            tmp_path / "eu.journal", secure_center.target, agent_id=f"eu-{uuid.uuid4().hex[:6]}"
        )
    with AgentThread(settings) as agent:
        assert agent.agent is not None

        async def connected() -> bool:
            return agent.agent is not None and agent.agent.session.connected.is_set()

        await eventually(connected, 10, "the agent should hold a session with the center over mutual TLS")
        async with grpc.aio.secure_channel(agent.target, tls.credentials("checkout")) as channel:
            spender = quota_pb2_grpc.QuotaStub(channel)
            assert (await _deduct(spender, mine, 3)).code == OK  # forwarded to the center as the agent
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await _deduct(spender, other, 3)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "may not spend budget" in (denied.value.details() or "")
        async with grpc.aio.secure_channel(agent.target, tls.server_only()) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _deduct(quota_pb2_grpc.QuotaStub(channel), mine, 3)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # no client certificate: no handshake
    consumed = {b: (await get(admin, b)).consumed for b in (mine, other)}
    assert consumed == {mine: 3, other: 0}
    await admin.close()


def test_an_agent_refuses_to_start_with_a_certificate_of_another_agent(
    tls: Tls, secure_center: CenterThread, tmp_path: Path
) -> None:
    with secured(tls):
        settings = agent_settings(tmp_path / "eu.journal", secure_center.target, agent_id="eu-1")
    theirs = tls.pki.client("us-1")
    wrong = replace(settings, center_cert_file=str(theirs.cert), center_key_file=str(theirs.key))
    with pytest.raises(RuntimeError) as info:
        AgentThread(wrong).start()
    cause = info.value.__cause__
    assert isinstance(cause, SettingsError), cause
    assert "names 'us-1', but this agent is 'eu-1'" in str(cause)
