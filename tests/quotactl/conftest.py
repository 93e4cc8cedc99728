"""Fixtures for the quotactl tests.

``fake_center`` is a scripted in-process gRPC server for the Admin and Quota services:
each test says how a method answers and inspects the requests it got. It lets the
CLI's request building, rendering and exit codes be tested without the real center
(whose address, for the integration tests, is the ``center_target`` fixture of
tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from quota.v1 import admin_pb2, admin_pb2_grpc, quota_pb2, quota_pb2_grpc
from quotactl.main import main
from tests.helpers.fake_center import FakeCenter, Run, Servicer


@pytest.fixture
def fake_center() -> Iterator[FakeCenter]:
    center = FakeCenter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    admin_methods = [m.name for m in admin_pb2.DESCRIPTOR.services_by_name["Admin"].methods]
    quota_methods = [m.name for m in quota_pb2.DESCRIPTOR.services_by_name["Quota"].methods]
    # Servicer is duck-typed (one attribute per RPC), not a subclass of the generated servicers.
    admin_pb2_grpc.add_AdminServicer_to_server(Servicer(center, admin_methods), server)  # type: ignore[arg-type]
    quota_pb2_grpc.add_QuotaServicer_to_server(Servicer(center, quota_methods), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    center.target = f"127.0.0.1:{port}"
    try:
        yield center
    finally:
        server.stop(None).wait(5)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run quotactl in-process: ``run(*argv)`` -> (exit code, stdout, stderr)."""

    def runner(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return runner


@pytest.fixture
def ctl(fake_center: FakeCenter, run: Run) -> Run:
    """Like ``run``, against the fake center."""

    def runner(*argv: str) -> tuple[int, str, str]:
        return run("--target", fake_center.target, *argv)

    return runner
