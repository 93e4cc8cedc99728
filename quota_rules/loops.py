"""How a service process runs: on which asyncio event loop (the standard one or uvloop, an optional
install), and until which signal.

grpc.aio runs on either. uvloop replaces the loop's Python scheduling and I/O with libuv; the
benchmark (`python -m loadtest.bench --event-loop uvloop`) measures what it changes here.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EVENT_LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``name``; None for the standard loop. ValueError if it cannot be had."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ValueError("event loop uvloop is not installed: pip install uvloop") from None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {name!r}")


def run(main: Coroutine[Any, Any, T], name: str = "asyncio") -> T:
    """``asyncio.run(main)`` on the event loop ``name``."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


async def until_stopped() -> None:
    """Return on SIGTERM (a Kubernetes stop) or SIGINT (Ctrl-C); the caller then drains."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop.

    On Python 3.11 ``asyncio.wait_for`` (under redis-py's and asyncpg's calls) drops a
    cancellation that arrives as the call completes; a background loop making one call after
    another would then never stop. The request stays counted on the task.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
