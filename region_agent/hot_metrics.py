"""The request path's metrics, counted in plain integers and turned into Prometheus metrics at scrape.

``prometheus_client``'s counters and histograms take a lock on every update, which cost a
local deduction more than a fifth of its time. These tallies are only ever updated from the
agent's event loop thread, so they need none; a scrape (from the metrics server's thread)
copies them first, under the GIL, and reports the copy. A histogram's count is the sum of its
buckets in the same copy, so the exposition stays consistent.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets  # one per bound, then +Inf; not cumulative
        self.sum = 0.0


class RequestTally(Collector):
    """``quota_region_agent_requests_total``, ``quota_region_agent_request_seconds`` and ``quota_region_agent_served_total``."""

    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(latency_buckets))
        self.requests: dict[tuple[str, str], int] = {}  # (method, code) -> calls
        self.served: dict[tuple[str, str], int] = {}  # (method, where) -> requests
        self.latency: dict[str, _Histogram] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        key = (method, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self.latency.get(method)
        if h is None:
            h = self.latency[method] = _Histogram(len(self.bounds) + 1)
        h.counts[bisect_left(self.bounds, seconds)] += 1  # the first bucket whose le >= seconds
        h.sum += seconds

    def count_served(self, method: str, where: str, n: int = 1) -> None:
        key = (method, where)
        self.served[key] = self.served.get(key, 0) + n

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "quota_region_agent_requests",
            "gRPC requests by method and result code (OK, INSUFFICIENT, ..., or a gRPC status for errors).",
            labels=["method", "code"],
        )
        for (method, code), n in list(self.requests.items()):
            requests.add_metric([method, code], n)
        yield requests
        latency = HistogramMetricFamily(
            "quota_region_agent_request_seconds", "gRPC request latency by method.", labels=["method"]
        )
        for method, h in list(self.latency.items()):
            counts, total_s = list(h.counts), h.sum
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
                running += n
                buckets.append((_le(bound), running))
            latency.add_metric([method], buckets, total_s)
        yield latency
        served = CounterMetricFamily(
            "quota_region_agent_served",
            "Spending requests by where they were decided: local (from the slice) or forwarded (by the"
            " center); the local hit ratio is local / (local + forwarded).",
            labels=["method", "where"],
        )
        for (method, where), n in list(self.served.items()):
            served.add_metric([method, where], n)
        yield served


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes ``le`` (Go's float format: +Inf, 0.005, 1.0)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))
