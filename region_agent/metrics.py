"""Prometheus metrics of one agent, in a registry of its own (served on the metrics port).

A registry per agent, not the process default: tests run several agents (and a center) in one
process, and each must report only its own numbers. Per-budget values (slice balance, lease)
are read from the core at scrape time, so the hot path updates no gauge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quota_rules.build import build_labels
from quota_rules.call_log import CallLog
from quota_rules.series import OTHER, most_active
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
        # The calls logged (quota_rules/call_log.py); the agent's settings set its sample and rate.
        self.calls = CallLog(logging.getLogger("region_agent.calls"), ok_sample=0.001, per_s=10)
        Info("quota_build", "The running build: component, version, Python.", registry=r).info(
            build_labels("agent")
        )
        # The request path's counters: lock-free tallies, read at scrape (region_agent.hot_metrics).
        self.tally = RequestTally(LATENCY_BUCKETS)
        r.register(self.tally)
        self.forwarded = Counter(
            "quota_region_agent_forwarded_total",
            "Requests forwarded to the center, by why the slice did not serve them.",
            ["reason"],
            registry=r,
        )
        self.forward_calls = Counter(
            "quota_region_agent_forward_calls_total",
            "Calls to the center carrying forwarded deductions: alone (a Deduct) or batch (a DeductBatch"
            " of those forwarded while a call was in flight).",
            ["how"],
            registry=r,
        )
        self.refills = Counter(
            "quota_region_agent_refills_total",
            "Slice requests answered by the center, by result code (OK, INSUFFICIENT, ...).",
            ["code"],
            registry=r,
        )
        self.refilled = Counter(
            "quota_region_agent_refilled_units_total", "Units granted to this agent.", registry=r
        )
        self.refill_seconds = Histogram(
            "quota_region_agent_refill_seconds",
            "Time from a SliceRequest to its Grant.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=r,
        )
        self.released = Counter(
            "quota_region_agent_released_units_total",
            "Units given back to the center, by why (idle, reclaim).",
            ["why"],
            registry=r,
        )
        self.reclaims = Counter(
            "quota_region_agent_reclaim_orders_total", "Reclaim orders answered.", registry=r
        )
        self.denied = Counter(
            "quota_region_agent_access_denied_total",
            "Calls refused by access control before they reached a handler, by method and status.",
            ["method", "code"],
            registry=r,
        )
        self.reconnects = Counter(
            "quota_region_agent_session_reconnects_total",
            "Times the session stream to the center was (re)opened.",
            registry=r,
        )
        self.session_errors = Counter(
            "quota_region_agent_session_errors_total",
            "Session streams that failed, and SessionError messages.",
            registry=r,
        )

    def access_denied(self, method: str, code: str) -> None:
        self.denied.labels(method, code).inc()

    def watch(
        self,
        agent: Agent,
        clock: Callable[[], int],
        heartbeat_answered: Callable[[], int | None],
        session_up: Callable[[], bool],
        budgets_shown: int = 100,
    ) -> None:
        """Report the core's per-budget state and the session's at every scrape."""
        self.registry.register(_StateCollector(agent, clock, heartbeat_answered, session_up, budgets_shown))

    def observe(self, method: str, code: str, start: float, request: object = None) -> None:
        """Count a call of ``method`` that ended with ``code``, begun at ``start`` (perf_counter),
        and log it if it is due (``calls``)."""
        seconds = time.perf_counter() - start
        self.tally.observe(method, code, seconds)
        self.calls.record(method, code, seconds, request)

    def served_local(self, method: str, n: int = 1) -> None:
        """Count ``n`` requests of ``method`` decided from the slice."""
        self.tally.count_served(method, "local", n)

    def served_forwarded(self, method: str) -> None:
        """Count a request of ``method`` decided by the center."""
        self.tally.count_served(method, "forwarded")


class _StateCollector(Collector):
    """Per-budget series of the ``shown`` budgets used most recently here, the rest added up under
    ``budget="_other"`` (quota_rules.series): an agent may hold slices of thousands of budgets."""

    def __init__(
        self,
        agent: Agent,
        clock: Callable[[], int],
        heartbeat_answered: Callable[[], int | None],
        session_up: Callable[[], bool],
        shown: int,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.heartbeat_answered = heartbeat_answered
        self.session_up = session_up
        self.shown = shown

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        available = GaugeMetricFamily(
            "quota_region_agent_slice_available",
            "Units this agent may still spend of its holding, per budget.",
            labels=["budget"],
        )
        reserved = GaugeMetricFamily(
            "quota_region_agent_slice_reserved",
            "Units held in reservations at this agent, per budget.",
            labels=["budget"],
        )
        lease = GaugeMetricFamily(
            "quota_region_agent_lease_remaining_seconds",
            "Seconds until the lease of a budget runs out at this agent (0: spent out or never had one);"
            ' for budget="_other" the soonest of the budgets added up there.',
            labels=["budget"],
        )
        usable = GaugeMetricFamily(
            "quota_region_agent_lease_valid",
            "1 while the agent may spend a budget's slice (lease valid, not lost); for"
            ' budget="_other" 1 only while every budget added up there may be spent.',
            labels=["budget"],
        )
        slices = list(self.agent.slices())
        shown = most_active({s.budget_id: float(s.active_at) for s in slices}, self.shown)
        rest: list[tuple[int, int, float, int]] = []
        for s in slices:
            ok = s.lease_valid(now) and s.holding is not None and not s.holding.lost
            row = (max(0, s.available()), s.counters.reserved, max(0, s.lease_deadline - now) / 1000, int(ok))
            if s.budget_id not in shown:
                rest.append(row)
                continue
            for family, value in zip((available, reserved, lease, usable), row, strict=True):
                family.add_metric([s.budget_id], value)
        if rest:
            available.add_metric([OTHER], sum(r[0] for r in rest))
            reserved.add_metric([OTHER], sum(r[1] for r in rest))
            lease.add_metric([OTHER], min(r[2] for r in rest))
            usable.add_metric([OTHER], min(r[3] for r in rest))
        yield available
        yield reserved
        yield lease
        yield usable
        yield GaugeMetricFamily(
            "quota_region_agent_session_up",
            "1 while the session stream to the center is open.",
            value=1 if self.session_up() else 0,
        )
        answered = self.heartbeat_answered()
        if answered is not None:
            # The agent's clock is monotonic: the answer's wall time is now less its age.
            yield GaugeMetricFamily(
                "quota_region_agent_heartbeat_answered_timestamp_seconds",
                "Unix time the center last answered a heartbeat (or a Hello); absent before the first"
                " answer. Its age: time() - this.",
                value=time.time() - (now - answered) / 1000,
            )
