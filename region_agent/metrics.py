"""Prometheus metrics of one agent, in a registry of its own (served on the metrics port).

A registry per agent, not the process default: tests run several agents (and a center) in one
process, and each must report only its own numbers. Per-budget values (slice balance, lease)
are read from the core at scrape time, so the hot path updates no gauge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quota_rules.build import build_labels
from region_agent.core.agent import Agent
from region_agent.hot_metrics import RequestTally

# No `_created` series beside every counter and histogram: they double the series and tell a
# dashboard nothing it uses (process-wide; the library leaves the function unannotated).
disable_created_metrics()  # type: ignore[no-untyped-call]
LATENCY_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info("quota_build", "The running build: component, version, Python.", registry=r).info(
            build_labels("agent")
        )
        # The request path's counters: lock-free tallies, read at scrape (region_agent.hot_metrics).
        self.tally = RequestTally(LATENCY_BUCKETS)
        r.register(self.tally)
        self.forwarded = Counter(
            "agent_forwarded_total",
            "Requests forwarded to the center, by why the slice did not serve them.",
            ["reason"],
            registry=r,
        )
        self.forward_calls = Counter(
            "agent_forward_calls_total",
            "Calls to the center carrying forwarded deductions: alone (a Deduct) or batch (a DeductBatch"
            " of those forwarded while a call was in flight).",
            ["how"],
            registry=r,
        )
        self.refills = Counter(
            "agent_refills_total",
            "Slice requests answered by the center, by result code (OK, INSUFFICIENT, ...).",
            ["code"],
            registry=r,
        )
        self.refilled = Counter("agent_refilled_units_total", "Units granted to this agent.", registry=r)
        self.refill_seconds = Histogram(
            "agent_refill_seconds",
            "Time from a SliceRequest to its Grant.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=r,
        )
        self.released = Counter(
            "agent_released_units_total",
            "Units given back to the center, by why (idle, reclaim).",
            ["why"],
            registry=r,
        )
        self.reclaims = Counter("agent_reclaim_orders_total", "Reclaim orders answered.", registry=r)
        self.denied = Counter(
            "agent_access_denied_total",
            "Calls refused by access control before they reached a handler, by method and status.",
            ["method", "code"],
            registry=r,
        )
        self.reconnects = Counter(
            "agent_session_reconnects_total",
            "Times the session stream to the center was (re)opened.",
            registry=r,
        )
        self.session_errors = Counter(
            "agent_session_errors_total",
            "Session streams that failed, and SessionError messages.",
            registry=r,
        )

    def access_denied(self, method: str, code: str) -> None:
        self.denied.labels(method, code).inc()

    def watch(
        self, agent: Agent, clock: Callable[[], int], heartbeat_answered: Callable[[], int | None]
    ) -> None:
        """Report the core's per-budget state and the heartbeat age at every scrape."""
        self.registry.register(_StateCollector(agent, clock, heartbeat_answered))

    def observe(self, method: str, code: str, start: float) -> None:
        """Count a call of ``method`` that ended with ``code``, begun at ``start`` (perf_counter)."""
        self.tally.observe(method, code, time.perf_counter() - start)

    def served_local(self, method: str, n: int = 1) -> None:
        """Count ``n`` requests of ``method`` decided from the slice."""
        self.tally.count_served(method, "local", n)

    def served_forwarded(self, method: str) -> None:
        """Count a request of ``method`` decided by the center."""
        self.tally.count_served(method, "forwarded")


class _StateCollector(Collector):
    def __init__(
        self, agent: Agent, clock: Callable[[], int], heartbeat_answered: Callable[[], int | None]
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.heartbeat_answered = heartbeat_answered

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        available = GaugeMetricFamily(
            "agent_slice_available",
            "Units this agent may still spend of its holding, per budget.",
            labels=["budget"],
        )
        reserved = GaugeMetricFamily(
            "agent_slice_reserved", "Units held in reservations at this agent, per budget.", labels=["budget"]
        )
        lease = GaugeMetricFamily(
            "agent_lease_remaining_seconds",
            "Seconds until the lease of a budget runs out at this agent (0: spent out or never had one).",
            labels=["budget"],
        )
        usable = GaugeMetricFamily(
            "agent_lease_valid",
            "1 while the agent may spend a budget's slice (lease valid, not lost).",
            labels=["budget"],
        )
        for s in list(self.agent.slices()):
            available.add_metric([s.budget_id], max(0, s.available()))
            reserved.add_metric([s.budget_id], s.counters.reserved)
            lease.add_metric([s.budget_id], max(0, s.lease_deadline - now) / 1000)
            ok = s.lease_valid(now) and s.holding is not None and not s.holding.lost
            usable.add_metric([s.budget_id], 1 if ok else 0)
        yield available
        yield reserved
        yield lease
        yield usable
        answered = self.heartbeat_answered()
        age = GaugeMetricFamily(
            "agent_heartbeat_age_seconds",
            "Seconds since the center last answered a heartbeat (or a Hello); -1 before the first answer.",
        )
        age.add_metric([], -1 if answered is None else (now - answered) / 1000)
        yield age
