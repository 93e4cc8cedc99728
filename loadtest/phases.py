"""A flash sale's three phases (serving up to 90 % sold, the end game of the last 10 %, after the
sell-out), from the callers' record of every call and the center's own Deduct count, sampled while
the sale ran; shared by the benchmark (``loadtest.bench.flash``) and the Locust run's report.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from bisect import bisect_left
from typing import Any

from loadtest.bench.agent_metrics import center_deducts
from loadtest.bench.measure import percentile

PHASES = ("serving", "end game", "after the sell-out")
SAMPLE_EVERY_S = 0.05

# The flash sale's targets, as ratios in one run (README, "The flash sale").
END_GAME_OK_RATIO = 0.5  # end game OK/s ≥ this × serving OK/s
END_GAME_P99_RATIO = 3.0  # end game p99 ≤ this × serving p99
AFTER_RATE_RATIO = 0.9  # requests/s after the sell-out ≥ this × serving requests/s
AFTER_CENTER_PER_THOUSAND = 1.0  # center calls per 1,000 requests after the sell-out


class CenterSampler:
    """The center's Deduct count every ``SAMPLE_EVERY_S``, with when it was read (in a thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="center-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            try:
                count = center_deducts(self.url)
            except OSError:  # the center restarting, or gone: a gap in the samples
                self._stop.wait(SAMPLE_EVERY_S)
                continue
            self.samples.append(((before + time.monotonic()) / 2, count))
            self._stop.wait(SAMPLE_EVERY_S)


def count_at(samples: list[tuple[float, float]], t: float) -> float:
    """The sampled count at ``t``, interpolated linearly between the samples around it."""
    if not samples:
        return 0.0
    times = [s[0] for s in samples]
    i = bisect_left(times, t)
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def phases(
    trace: list[tuple[float, float, bool]],
    samples: list[tuple[float, float]],
    total: int,
    start: float,
    end: float,
) -> dict[str, Any]:
    """The three phases of a sale of ``total`` units from the buyers' calls and the center's counts.

    Serving ends with the OK that sold 90 % of ``total``, the end game with the last one; after the
    sell-out runs to ``end``. None for the phases of a sale that did not sell out.
    """
    oks = sorted(t for t, _, ok in trace if ok)
    if len(oks) < total:
        return {"sold": len(oks), "sold_out": False, "phases": None}
    bounds = [start, oks[int(0.9 * total) - 1], oks[total - 1], end]
    out: dict[str, Any] = {}
    for name, (a, b) in zip(PHASES, itertools.pairwise(bounds), strict=True):
        calls = [c for c in trace if a < c[0] <= b]
        seconds = max(b - a, 1e-9)
        latencies = sorted(c[1] for c in calls)
        center = count_at(samples, b) - count_at(samples, a) if samples else None
        out[name] = {
            "seconds": b - a,
            "requests": len(calls),
            "requests_per_s": len(calls) / seconds,
            "ok_per_s": sum(1 for c in calls if c[2]) / seconds,
            "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
            "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
            "center_calls": center,
            "center_per_thousand": None if center is None or not calls else center * 1000 / len(calls),
        }
    return {"sold": len(oks), "sold_out": True, "phases": out}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of a sale, each with the measured ratio and whether it is met."""
    p = result["phases"]
    if p is None:
        return []
    serving, end_game, after = p["serving"], p["end game"], p["after the sell-out"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    rows = [
        (
            "end game OK/s ÷ serving OK/s",
            ratio(end_game["ok_per_s"], serving["ok_per_s"]),
            END_GAME_OK_RATIO,
            "≥",
        ),
        ("end game p99 ÷ serving p99", ratio(end_game["p99_ms"], serving["p99_ms"]), END_GAME_P99_RATIO, "≤"),
        (
            "after requests/s ÷ serving requests/s",
            ratio(after["requests_per_s"], serving["requests_per_s"]),
            AFTER_RATE_RATIO,
            "≥",
        ),
        (
            "after: center calls per 1,000 requests",
            after["center_per_thousand"],
            AFTER_CENTER_PER_THOUSAND,
            "≤",
        ),
    ]
    out = []
    for what, value, bound, sense in rows:
        met = None if value is None else (value >= bound if sense == "≥" else value <= bound)
        out.append({"target": what, "value": value, "bound": f"{sense} {bound:g}", "met": met})
    return out


def table(result: dict[str, Any]) -> list[str]:
    """The phases and the targets as text lines (the sale must have sold out)."""
    rows = [
        [
            "phase",
            "seconds",
            "requests",
            "requests/s",
            "OK/s",
            "p50 ms",
            "p99 ms",
            "center calls",
            "per 1,000",
        ]
    ]
    for name, p in result["phases"].items():
        rows.append(
            [
                name,
                _n(p["seconds"], 2),
                _n(p["requests"]),
                _n(p["requests_per_s"]),
                _n(p["ok_per_s"]),
                _n(p["p50_ms"], 2),
                _n(p["p99_ms"], 2),
                _n(p["center_calls"]),
                _n(p["center_per_thousand"], 2),
            ]
        )
    lines = _aligned(rows)
    lines.append(
        "serving: until 90 % was sold; end game: the last 10 %; after the sell-out: from the last unit sold"
    )
    rows = [["target", "value", "bound", "result"]]
    for t in targets(result):
        met = "-" if t["met"] is None else ("met" if t["met"] else "NOT met")
        rows.append([t["target"], _n(t["value"], 2), t["bound"], met])
    return lines + _aligned(rows)


def _n(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]
