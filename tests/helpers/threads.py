"""A server of the project (the center, a region agent) running in a thread with its own loop.

Tests call it over real gRPC while their own event loop is busy, and several can run side by
side in one process. Subclasses say how to start the server (``_open``); ``.server`` is what
that returned (it has ``port``, ``metrics_port`` and ``stop(grace_s)``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Generic, Protocol, Self, TypeVar


class Running(Protocol):
    port: int
    metrics_port: int | None

    async def stop(self, grace_s: float | None = ...) -> None: ...


S = TypeVar("S", bound=Running)


class ServerThread(Generic[S]):
    name = "server"
    start_timeout_s = 60.0

    def __init__(self) -> None:
        self.server: S | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    async def _open(self) -> S:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise TimeoutError(f"{self.name} did not start within {self.start_timeout_s:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._error
        return self

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    def call(self, coro_factory: Any) -> Any:
        """Run a coroutine on the server's loop (to reach its internals) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory(), self._loop).result(60)

    def stop(self) -> None:
        """Stop the server and wait for its thread; a no-op once it stopped."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.server = await self._open()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(0.5)
