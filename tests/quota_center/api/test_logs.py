"""The center's log as an operator reads it: JSON lines on request with each refused call's fields,
a warning naming a misspelt setting, and a setting it cannot run with refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from devstack import CenterProcess, RedisServer
from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from tests.helpers.regions import eventually


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # a line that starts like JSON must be JSON
    return out


async def test_json_logs_carry_the_fields_of_a_refused_call(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "center.log"
    center = CenterProcess(
        fresh_redis.url,
        database_url,
        log_path=log,
        metrics_port=0,
        settings={"LOG_FORMAT": "json", "GRPCPORT": "7000"},  # the second is misspelt
    ).start()
    try:
        async with grpc.aio.insecure_channel(center.target) as channel:
            quota = quota_pb2_grpc.QuotaStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await quota.Deduct(
                    pb.DeductRequest(budget_id="no-such-budget", request_id="req-42", amount=3)
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

        def refused() -> list[dict[str, Any]]:
            return [r for r in _lines(log) if r.get("method") == "Deduct" and r.get("code") == "NOT_FOUND"]

        async def logged() -> bool:
            return bool(refused())

        await eventually(logged, 10, "the refused call should be logged")
        line = refused()[0]
        assert (line["budget_id"], line["request_id"], line["level"], line["component"]) == (
            "no-such-budget",
            "req-42",
            "INFO",
            "center",
        )
        assert line["latency_ms"] >= 0
        assert {"timestamp", "logger", "message"} <= set(line)
        warnings = [r["message"] for r in _lines(log) if r["level"] == "WARNING"]
        assert any(
            "QUOTA_CENTER_GRPCPORT is not a setting" in w and "QUOTA_CENTER_GRPC_PORT" in w for w in warnings
        )
        # Every line of the process's own loggers is JSON.
        ours = [ln for ln in log.read_text().splitlines() if "quota_center" in ln]
        assert ours
        assert all(ln.startswith("{") for ln in ours), ours
    finally:
        center.stop()


def test_a_log_level_it_does_not_know_is_one_line_not_a_traceback() -> None:
    env = {**os.environ, "QUOTA_CENTER_LOG_LEVEL": "verbose"}
    done = subprocess.run(
        [sys.executable, "-m", "quota_center.main", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "quota-center: QUOTA_CENTER_LOG_LEVEL='verbose' is not one of DEBUG, INFO, WARNING, ERROR\n"
    )
