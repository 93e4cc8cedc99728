"""A real center on port 0, in a thread with its own event loop, so that both async tests and
subprocess-driven tests (quotactl) can call it while the test's own loop is busy or blocked."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import grpc
from quota.v1 import admin_pb2_grpc, quota_pb2_grpc

from quota_center.server import Center, start
from quota_center.settings import Settings


def center_settings(redis_url: str, database_url: str, **overrides: object) -> Settings:
    base = Settings(
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        redis_url=redis_url,
        database_url=database_url,
        transfer_stale_ms=60_000,  # tests drive the sweeper themselves
        sweep_interval_ms=3_600_000,
        fill_interval_ms=0,  # the filler moves budget in the background; tests/fill start their own
        drain_grace_s=1.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class CenterThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.center: Center | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="center", daemon=True)

    def start(self) -> CenterThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("center did not start within 60 s")
        if self._error is not None:
            raise RuntimeError("center failed to start") from self._error
        return self

    @property
    def target(self) -> str:
        assert self.center is not None
        return f"127.0.0.1:{self.center.port}"

    @property
    def metrics_url(self) -> str:
        assert self.center is not None
        return f"http://127.0.0.1:{self.center.metrics_port}/metrics"

    def call(self, coro_factory):  # type: ignore[no-untyped-def]
        """Run a coroutine on the center's loop (to reach its internals) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(60)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.center = await start(self.settings, metrics=True, background=True)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.center.stop(0.5)


class Client:
    """Async stubs on one channel."""

    def __init__(self, target: str) -> None:
        # A channel of its own connections: gRPC shares subchannels between the channels of a
        # process, so a new client would inherit another's reconnect backoff after a restart.
        self.channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
