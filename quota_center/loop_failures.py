"""Failures of the center's background loops (sweeper, settlement, expiry, leases, gauges, filler).

A loop that fails on one budget goes on with the others, and a failure that repeats every pass
(Redis down, one budget's bad state) must neither flood the log nor go unseen: each failure is
counted in ``quota_loop_failures_total{loop}``, its traceback is logged the first time and again
only when the error changes, and the recovery is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from quota_center.metrics import LOOP_FAILURES
from quota_rules.loops import stop_if_cancelled

log = logging.getLogger(__name__)


class LoopFailures:
    def __init__(self, loop: str) -> None:
        self.loop = loop
        self._last: dict[str, str] = {}  # what failed ("" for the whole pass, else a budget) -> error

    def failed(self, exc: BaseException, what: str = "") -> None:
        LOOP_FAILURES.labels(self.loop).inc()
        error = f"{type(exc).__name__}: {exc}"
        if self._last.get(what) == error:
            return
        self._last[what] = error
        log.error(
            "%s%s failed (retried every pass; repeats are counted in quota_loop_failures_total{loop=%r}, not logged)",
            self.loop,
            f" on budget {what}" if what else "",
            self.loop,
            exc_info=exc,
        )

    def succeeded(self, what: str = "") -> None:
        if self._last.pop(what, None) is not None:
            log.info("%s%s works again", self.loop, f" on budget {what}" if what else "")


async def every(interval_s: float, step: Callable[[], Awaitable[object]], failures: LoopFailures) -> None:
    """Run ``step`` forever, ``interval_s`` apart; a failure is counted and logged (``failures``)
    and the next round tries again."""
    while True:
        try:
            await step()
        except Exception as exc:
            failures.failed(exc)
        else:
            failures.succeeded()
        stop_if_cancelled()
        await asyncio.sleep(interval_s)
