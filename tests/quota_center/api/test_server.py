"""The center process: health, reflection, metrics, settings help and a graceful SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from devstack import RedisServer
from quota_rules.access import parse_policy
from tests.helpers.calls import OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client, center_settings
from tests.helpers.tls import Tls, secured

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status  # type: ignore[no-any-return]


def _wait_for(target: str, status: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while _health(target) != status:
        assert time.monotonic() < deadline, f"health never became {status}"
        time.sleep(0.1)


def test_health_serves_while_redis_and_postgres_answer(center: CenterThread) -> None:
    assert _health(center.target) == SERVING
    assert _health(center.target, "quota.v1.Quota") == SERVING


@pytest.fixture
def own_center(fresh_redis: RedisServer, database_url: str) -> Iterator[tuple[CenterThread, RedisServer]]:
    c = CenterThread(center_settings(fresh_redis.url, database_url, health_interval_ms=100)).start()
    yield c, fresh_redis
    c.stop()


def test_health_turns_not_serving_when_redis_is_down(own_center: tuple[CenterThread, RedisServer]) -> None:
    """Readiness follows Redis; liveness does not (restarting the pod would not bring Redis back)."""
    center, redis = own_center
    _wait_for(center.target, SERVING)
    assert _health(center.target, "readiness") == SERVING
    assert _health(center.target, "liveness") == SERVING
    redis.kill()
    _wait_for(center.target, NOT_SERVING)
    assert _health(center.target, "readiness") == NOT_SERVING
    assert _health(center.target, "quota.v1.Quota") == NOT_SERVING
    assert _health(center.target, "liveness") == SERVING
    redis.restart()
    _wait_for(center.target, SERVING)
    assert _health(center.target, "readiness") == SERVING


def test_liveness_fails_when_a_background_loop_dies(center: CenterThread) -> None:
    """A loop that ended with an error is a process to restart: liveness says so."""
    running = center.center
    assert running is not None

    async def dies() -> None:
        raise RuntimeError("a loop that died")

    async def add() -> None:
        running.tasks.append(asyncio.create_task(dies()))
        await asyncio.sleep(0.05)
        await running.health.check()

    assert _health(center.target, "liveness") == SERVING
    try:
        center.call(add)
        assert _health(center.target, "liveness") == NOT_SERVING
        assert _health(center.target, "readiness") == SERVING  # Redis and PostgreSQL still answer
    finally:

        async def remove() -> None:
            dead = running.tasks.pop()
            assert dead.done()
            await running.health.check()

        center.call(remove)
    assert _health(center.target, "liveness") == SERVING


def test_reflection_lists_the_services(center: CenterThread) -> None:
    with grpc.insecure_channel(center.target) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"quota.v1.Quota", "quota.v1.Admin", "quota.v1.AgentSession", "grpc.health.v1.Health"} <= services


async def test_metrics_count_requests_by_method_and_code(center: CenterThread, budget_id: str) -> None:
    client = Client(center.target)
    await create(client, budget_id, 10)
    assert (await deduct(client, budget_id, f"{budget_id}-1", 10)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-2", 1)).code != OK
    await assert_balanced(client, budget_id)
    await client.close()
    text = await asyncio.to_thread(_fetch, center.metrics_url)
    assert re.search(r'quota_requests_total\{code="OK",method="Deduct"\} [1-9]', text)
    assert re.search(r'quota_requests_total\{code="INSUFFICIENT",method="Deduct"\} [1-9]', text)
    assert re.search(r"quota_ledger_rows_total [1-9]", text)
    assert re.search(r'quota_transfers_total\{kind="refill",outcome="committed"\} [1-9]', text)
    assert re.search(r'quota_build_info\{component="center",python="[\d.]+",version="[^"]+"\} 1\.0', text)
    assert "_created" not in text  # no creation-time series beside every counter


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode())


def test_help_lists_every_setting() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "quota_center.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("QUOTA_CENTER_REDIS_URL", "QUOTA_CENTER_DATABASE_URL", "QUOTA_CENTER_GRPC_PORT", "serve"):
        assert name in out


@pytest.mark.parametrize(
    ("module", "prog"), [("quota_center.main", "quota-center"), ("quotactl.main", "quotactl")]
)
def test_version_names_the_build(module: str, prog: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.fullmatch(rf"{prog} \S+ \(Python [\d.]+\)\n", out), out


def test_a_bad_setting_is_refused_clearly() -> None:
    env = {**os.environ, "QUOTA_CENTER_GRPC_PORT": "lots"}
    done = subprocess.run(
        [sys.executable, "-m", "quota_center.main", "serve"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "QUOTA_CENTER_GRPC_PORT='lots' is not a valid int" in done.stderr


def test_a_missing_tls_file_stops_the_start_naming_it() -> None:
    env = {
        **os.environ,
        "QUOTA_CENTER_TLS_CERT_FILE": "/nonexistent/server.crt",
        "QUOTA_CENTER_TLS_KEY_FILE": "/nonexistent/server.key",
    }
    done = subprocess.run(
        [sys.executable, "-m", "quota_center.main", "serve"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert (
        "QUOTA_CENTER_TLS_CERT_FILE/_KEY_FILE certificate /nonexistent/server.crt: No such file"
        in done.stderr
    )


def test_token_prints_a_token_and_the_access_file_line_that_grants_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quota_center.main", "token", "ops"],
        capture_output=True,
        text=True,
        check=True,
    )
    token = done.stdout.strip()
    line = done.stderr.splitlines()[-1]
    policy = parse_policy(f'[identities.ops]\nroles = ["admin"]\n[tokens]\n{line}\n')
    assert policy.token_identity(token) == "ops"
    assert token not in done.stderr  # the file keeps the digest only


async def test_sigterm_drains_and_loses_nothing_acknowledged(
    center: CenterThread, redis_url: str, database_url: str, budget_id: str
) -> None:
    env = {
        **os.environ,
        "QUOTA_CENTER_REDIS_URL": redis_url,
        "QUOTA_CENTER_DATABASE_URL": database_url,
        "QUOTA_CENTER_GRPC_HOST": "127.0.0.1",
        "QUOTA_CENTER_GRPC_PORT": "0",
        "QUOTA_CENTER_METRICS_PORT": "0",
        "QUOTA_CENTER_DRAIN_GRACE_S": "5",
        "QUOTA_CENTER_SHUTDOWN_DELAY_MS": "1500",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quota_center.main", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    log: list[str] = []
    try:
        assert proc.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "the center exited before it listened"
            log.append(line)
            found = re.search(r"listening: gRPC 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        drain_log = asyncio.create_task(_collect(proc.stderr, log))
        doomed = Client(f"127.0.0.1:{port}")
        await create(doomed, budget_id, 100_000)
        acknowledged: list[int] = []
        answered_at: list[float] = []

        async def spend(worker: int) -> None:
            for i in range(10_000):
                try:
                    r = await deduct(doomed, budget_id, f"{budget_id}-{worker}-{i}", 3)
                except grpc.aio.AioRpcError:
                    return  # the server stopped taking calls
                assert r.code == OK
                acknowledged.append(r.amount)
                answered_at.append(time.monotonic())

        workers = asyncio.gather(*(spend(w) for w in range(4)))
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.sleep(0.3)
        # Not ready at once (Kubernetes takes the pod out of its Service), alive, still serving.
        target = f"127.0.0.1:{port}"
        assert await asyncio.to_thread(_health, target, "readiness") == NOT_SERVING
        assert await asyncio.to_thread(_health, target, "") == NOT_SERVING
        assert await asyncio.to_thread(_health, target, "liveness") == SERVING
        await workers
        # Deductions were still answered well into the 1.5 s delay, not only before the signal.
        assert max(answered_at) - signalled > 1.0, max(answered_at) - signalled
        assert await asyncio.wait_for(proc.wait(), 20) == 0, "".join(log)
        await drain_log
        await doomed.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert any("draining" in line for line in log)
    assert acknowledged, "some deductions were served before the drain"
    # The session's center reads the same Redis and PostgreSQL: every acknowledged unit is there.
    survivor = Client(center.target)
    assert (await get(survivor, budget_id)).consumed == sum(acknowledged)
    await assert_balanced(survivor, budget_id)
    await survivor.close()


def test_the_health_port_answers_probes_in_plaintext_and_nothing_else(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path
) -> None:
    """Kubernetes' gRPC probe speaks no TLS: with mutual TLS on the gRPC port, the health port
    still answers liveness and readiness, in plaintext, and serves no other service."""
    with secured(Tls.create(tmp_path)):
        center = CenterThread(center_settings(fresh_redis.url, database_url, health_port=0)).start()
    try:
        assert center.center is not None
        with pytest.raises(grpc.RpcError):
            _health(center.target, "readiness")  # the gRPC port wants TLS
        assert center.center.health_listener is not None
        target = f"127.0.0.1:{center.center.health_listener.port}"
        assert _health(target, "liveness") == SERVING
        assert _health(target, "readiness") == SERVING
        with grpc.insecure_channel(target) as channel:
            raw = channel.unary_unary("/quota.v1.Quota/Deduct")
            with pytest.raises(grpc.RpcError) as err:
                raw(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        fresh_redis.stop()
        _wait_for(target, NOT_SERVING)  # it follows readiness: Redis is down
        assert _health(target, "liveness") == SERVING
    finally:
        center.stop()
        fresh_redis.start()
