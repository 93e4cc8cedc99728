"""A real region agent on port 0, in a thread with its own event loop (like support.center.CenterThread),
so tests can call it while their own loop is busy, and run several agents next to a center."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import grpc
from quota.v1 import quota_pb2_grpc

from region_agent.server import RunningAgent, start
from region_agent.settings import Settings


def agent_settings(journal_path: str | Path, center_target: str, **overrides: object) -> Settings:
    """Settings for a test agent: ports 0, a short drain, the journal where the test says."""
    base = Settings(
        agent_id="agent-test",
        region="test",
        center_target=center_target,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        journal_path=str(journal_path),
        forward_deadline_ms=2000,
        reconnect_min_ms=50,
        reconnect_max_ms=500,
        drain_grace_s=0.5,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class AgentThread:
    """``AgentThread(settings).start()``; ``.target`` for clients; ``.stop()`` drains it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.agent: RunningAgent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"agent-{settings.agent_id}", daemon=True)

    def start(self) -> AgentThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("agent did not start within 30 s")
        if self._error is not None:
            raise RuntimeError("agent failed to start") from self._error
        return self

    @property
    def target(self) -> str:
        assert self.agent is not None
        return f"127.0.0.1:{self.agent.port}"

    @property
    def metrics_url(self) -> str:
        assert self.agent is not None
        return f"http://127.0.0.1:{self.agent.metrics_port}/metrics"

    def call(self, coro_factory):  # type: ignore[no-untyped-def]
        """Run a coroutine on the agent's loop (to reach its internals) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> AgentThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.agent = await start(self.settings)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.agent.stop(0.5)


class AgentClient:
    """Async Quota stub on one channel to an agent."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
