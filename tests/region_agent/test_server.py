"""The agent process over real gRPC, with no center reachable: bad input, UNAVAILABLE, health, metrics, drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from devstack import AgentProcess, free_port
from quota.v1 import common_pb2 as pb
from region_agent.storage.journal import Journal, JournalLocked
from tests.helpers.agent import AgentClient, AgentThread, agent_settings


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentThread]:
    """An agent whose center is a port nothing listens on."""
    journal = tmp_path_factory.mktemp("agent") / "agent.journal"
    settings = agent_settings(journal, f"127.0.0.1:{free_port()}", forward_deadline_ms=500)
    with AgentThread(settings) as agent:
        yield agent


@pytest.fixture
async def client(running: AgentThread) -> AsyncIterator[AgentClient]:
    c = AgentClient(running.target)
    yield c
    await c.close()


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda q: q.Deduct(pb.DeductRequest(budget_id="b1", request_id="r", amount=0)),
            "amount must be positive",
        ),
        (
            lambda q: q.Deduct(pb.DeductRequest(budget_id="b1", request_id="", amount=1)),
            "request_id is required",
        ),
        (lambda q: q.Deduct(pb.DeductRequest(budget_id="{b}", request_id="r", amount=1)), "budget_id"),
        (
            lambda q: q.Deduct(pb.DeductRequest(budget_id="b1", request_id="r", amount=2**53)),
            "exceeds the maximum",
        ),
        (lambda q: q.DeductBatch(pb.DeductBatchRequest()), "items must not be empty"),
        (
            lambda q: q.DeductBatch(
                pb.DeductBatchRequest(
                    items=[
                        pb.DeductRequest(budget_id="b1", request_id="ok", amount=1),
                        pb.DeductRequest(budget_id="b1", request_id="bad", amount=-1),
                    ]
                )
            ),
            "items[1]: amount must be positive",
        ),
        (
            lambda q: q.Return(pb.ReturnRequest(budget_id="b1", request_id="r", deduction_id="", amount=1)),
            "deduction_id is required",
        ),
        (
            lambda q: q.Reserve(pb.ReserveRequest(budget_id="b1", request_id="r", amount=1, ttl_ms=-1)),
            "ttl_ms must not be negative",
        ),
        (lambda q: q.Confirm(pb.ConfirmRequest(budget_id="b1", reservation_id="r", amount=0)), "amount"),
        (lambda q: q.Cancel(pb.CancelRequest(budget_id="b1", reservation_id="x" * 129)), "129 bytes"),
        (lambda q: q.GetBalance(pb.GetBalanceRequest(budget_id="")), "budget_id is required"),
    ],
)
async def test_bad_input_is_invalid_argument(client: AgentClient, call: object, needle: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(client.quota)  # type: ignore[operator]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (err.value.details() or "")


async def test_a_malformed_message_is_invalid_argument(client: AgentClient) -> None:
    raw: Any = client.channel.unary_unary("/quota.v1.Quota/Deduct")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\x0a\xff\xff\xff")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed Deduct request" in (err.value.details() or "")


async def test_an_unreachable_center_is_unavailable_and_nothing_is_remembered(client: AgentClient) -> None:
    request = pb.DeductRequest(budget_id="b1", request_id="fwd-1", amount=5)
    for _ in range(2):  # the retry is tried again, not answered from memory
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.quota.Deduct(request)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "center at 127.0.0.1:" in (err.value.details() or "")
        assert "unreachable" in (err.value.details() or "")
    for call in (
        client.quota.GetBalance(pb.GetBalanceRequest(budget_id="b1")),
        client.quota.Confirm(pb.ConfirmRequest(budget_id="b1", reservation_id="x", amount=1)),
        client.quota.DeductBatch(
            pb.DeductBatchRequest(items=[pb.DeductRequest(budget_id="b1", request_id="fwd-2", amount=1)])
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_reflection_and_metrics(running: AgentThread, client: AgentClient) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    # Kubernetes' gRPC probes ask for these names: an unknown one would fail the probe. Alive,
    # but not ready: no center to forward to, and no slice to spend.
    for service, status in [
        ("liveness", health_pb2.HealthCheckResponse.SERVING),
        ("", health_pb2.HealthCheckResponse.NOT_SERVING),
        ("readiness", health_pb2.HealthCheckResponse.NOT_SERVING),
        ("quota.v1.Quota", health_pb2.HealthCheckResponse.NOT_SERVING),
    ]:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == status, service
    with pytest.raises(grpc.aio.AioRpcError):
        await client.quota.Deduct(pb.DeductRequest(budget_id="b1", request_id="r", amount=0))

    def sync_checks() -> str:
        with grpc.insecure_channel(running.target) as channel:
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
            assert "quota.v1.Quota" in services
            assert "grpc.health.v1.Health" in services
        with urllib.request.urlopen(running.metrics_url, timeout=5) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(sync_checks)
    assert 'quota_region_agent_requests_total{code="INVALID_ARGUMENT",method="Deduct"}' in text
    # Never answered (no center): no timestamp rather than a made-up value; the session is down.
    assert "quota_region_agent_heartbeat_answered_timestamp_seconds" not in text
    assert "quota_region_agent_session_up 0.0" in text
    assert "quota_requests_total" not in text  # the center's metrics are not the agent's
    assert re.search(r'quota_build_info\{component="agent",python="[\d.]+",version="[^"]+"\} 1\.0', text)
    assert "_created" not in text  # no creation-time series beside every counter


def test_version_names_the_build() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "region_agent.main", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.fullmatch(r"region-agent \S+ \(Python [\d.]+\)\n", out), out


def test_a_journal_in_use_refuses_a_second_agent(running: AgentThread) -> None:
    with pytest.raises(JournalLocked):
        Journal(running.settings.journal_path)


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGION_AGENT_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env | values


def test_help_lists_every_setting() -> None:
    from region_agent.settings import Settings

    out = subprocess.run(
        [sys.executable, "-m", "region_agent.main", "serve", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert out.returncode == 0
    for name in Settings.__dataclass_fields__:
        assert f"REGION_AGENT_{name.upper()}" in out.stdout


def test_serve_without_an_agent_id_says_so() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "region_agent.main", "serve"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert out.returncode == 2
    assert "REGION_AGENT_AGENT_ID is required" in out.stderr


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    agent = AgentProcess(
        f"127.0.0.1:{free_port()}",
        agent_id="drain-test",
        journal=tmp_path / "j",
        log_path=tmp_path / "agent.log",
        metrics_port=0,
        settings={"DRAIN_GRACE_S": "0.5", "SHUTDOWN_DELAY_MS": "1500"},
        up_when="liveness",  # no center: never ready
    ).start()
    try:
        agent.process.send(signal.SIGTERM)
        time.sleep(0.3)
        # Not ready at once, still alive and answering during the delay.
        with grpc.insecure_channel(agent.target) as channel:
            checks = health_pb2_grpc.HealthStub(channel)

            def status(service: str) -> int:
                reply = checks.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                return int(reply.status)

            assert status("readiness") == health_pb2.HealthCheckResponse.NOT_SERVING
            assert status("liveness") == health_pb2.HealthCheckResponse.SERVING
        assert agent.wait(15) == 0
    finally:
        agent.kill()
        err = agent.log_path.read_text()
    assert "draining" in err
    with Journal(tmp_path / "j"):  # the lock went with the process
        pass
