"""One log line per gRPC call worth a look, with its fields, bounded so a storm cannot flood the log.

A call that failed (the server could not answer: UNAVAILABLE, INTERNAL, ...) is a WARNING; one
refused (a business outcome such as INSUFFICIENT, or bad input) is INFO; successful calls are
logged for a sample only (``ok_sample``, a fraction). At the end of a flash sale nearly every call
is refused, thousands a second: each method and code is logged at most ``per_s`` times a second,
and the next line logged for it says how many were left out (``suppressed``) in between.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

# gRPC status names that say the server could not do its job (others are the caller's doing).
FAILURES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "DATA_LOSS", "RESOURCE_EXHAUSTED"}
)


@dataclass(slots=True)
class _Window:
    second: int = -1
    logged: int = 0
    suppressed: int = 0


class CallLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        ok_sample: float,
        per_s: int,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.logger = logger
        self.ok_sample = ok_sample
        self.per_s = per_s
        self.clock = clock
        self.draw = draw
        self._windows: dict[tuple[str, str], _Window] = {}

    def record(self, method: str, code: str, seconds: float, request: object) -> None:
        """Log the call if it is due; ``request`` is the call's message (its ids are read from it)."""
        if code == "OK":
            if self.ok_sample <= 0 or self.draw() >= self.ok_sample:
                return
            level = logging.INFO
        else:
            level = logging.WARNING if code in FAILURES else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        w = self._windows.get((method, code))
        if w is None:
            w = self._windows[(method, code)] = _Window()
        second = int(self.clock())
        if second != w.second:
            w.second, w.logged = second, 0
        if w.logged >= self.per_s:
            w.suppressed += 1
            return
        w.logged += 1
        suppressed, w.suppressed = w.suppressed, 0
        budget_id = str(getattr(request, "budget_id", "") or "")
        request_id = str(getattr(request, "request_id", "") or getattr(request, "reservation_id", "") or "")
        latency_ms = round(seconds * 1000, 3)
        fields = {
            "method": method,
            "code": code,
            "budget_id": budget_id,
            "request_id": request_id,
            "latency_ms": latency_ms,
            "suppressed": suppressed,
        }
        more = f" ({suppressed} more like it not logged)" if suppressed else ""
        self.logger.log(
            level,
            "%s %s budget=%s request=%s %.1f ms%s",
            method,
            code,
            budget_id or "-",
            request_id or "-",
            latency_ms,
            more,
            extra=fields,
        )
