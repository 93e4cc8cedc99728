"""A real center on port 0, in a thread with its own event loop, so that both async tests and
subprocess-driven tests (quotactl) can call it while the test's own loop is busy or blocked."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace

from devstack import create_database, drop_database
from quota.v1 import admin_pb2_grpc, quota_pb2_grpc
from quota_center.server import Center, start
from quota_center.settings import Settings
from tests.helpers import tls
from tests.helpers.threads import ServerThread


def center_settings(redis_url: str, database_url: str, **overrides: object) -> Settings:
    """A test center's settings: ports 0, no background movers; mutual TLS while tls.secured."""
    secured = tls.active()
    if secured is not None:
        overrides = {**secured.listener(), **overrides}
    base = Settings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        redis_url=redis_url,
        database_url=database_url,
        transfer_stale_ms=60_000,  # tests drive the sweeper themselves
        sweep_interval_ms=3_600_000,
        fill_interval_ms=0,  # the filler moves budget in the background; tests/quota_center/refill/background start their own
        drain_grace_s=1.0,
        shutdown_delay_ms=0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


# Leases that run out within a test: 400 ms, then 100 ms of skew, checked every 50 ms.
SHORT_LEASES: dict[str, object] = {
    "agent_lease_ms": 400,
    "agent_lease_skew_ms": 100,
    "agent_expiry_interval_ms": 50,
}


class CenterThread(ServerThread[Center]):
    name = "center"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    @property
    def center(self) -> Center | None:
        return self.server

    async def _open(self) -> Center:
        return await start(self.settings, metrics=True, background=True)


@contextlib.contextmanager
def own_ledger_center(
    redis_url: str, database_url: str, prefix: str, **overrides: object
) -> Iterator[CenterThread]:
    """A center on a database of its own (on ``database_url``'s server), dropped afterwards: its
    lists and its background loops see only the budgets its tests create."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    dsn = create_database(database_url, name)
    running = CenterThread(center_settings(redis_url, dsn, **overrides)).start()
    try:
        yield running
    finally:
        running.stop()
        drop_database(database_url, name)


class Client:
    """Async stubs on one channel (mutual TLS as the tester while tls.secured)."""

    def __init__(self, target: str) -> None:
        # A channel of its own connections: gRPC shares subchannels between the channels of a
        # process, so a new client would inherit another's reconnect backoff after a restart.
        self.channel = tls.channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
