"""Stop whatever this process started and has not stopped: at exit, and on SIGTERM when asked.

A test session or a load test may end without its teardown (an exception, a CI timeout); the
servers would then outlive it, holding ports and temp dirs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Servers still running, stopped at interpreter exit even when their owner's teardown never ran.
_live: dict[int, Stoppable] = {}


def track(server: Stoppable) -> None:
    _live[id(server)] = server


def untrack(server: Stoppable) -> None:
    _live.pop(id(server), None)


def stop_all() -> None:
    """Stop every server this process started and has not stopped, newest first."""
    for server in reversed(list(_live.values())):
        with contextlib.suppress(Exception):
            server.stop()
    _live.clear()


atexit.register(stop_all)


def install_sigterm_cleanup() -> None:
    """Stop the servers on SIGTERM too (a CI timeout), where atexit would not run.

    Only installed over the default action, so a handler someone else set up wins.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
