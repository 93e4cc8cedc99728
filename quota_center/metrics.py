"""Prometheus metrics of the center, served on their own port (settings: METRICS_PORT)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quota_center.budget_series import BudgetSeries
from quota_rules.build import build_labels

# No `_created` series beside every counter and histogram: they double the series and tell a
# dashboard nothing it uses (process-wide; the library leaves the function unannotated).
disable_created_metrics()  # type: ignore[no-untyped-call]
BUILD = Info("quota_build", "The running build: component, version, Python.")
BUILD.info(build_labels("center"))

REQUESTS = Counter(
    "quota_requests_total",
    "gRPC requests by method and result code (OK, INSUFFICIENT, ..., or a gRPC status for errors).",
    ["method", "code"],
)
LATENCY = Histogram(
    "quota_request_seconds",
    "gRPC request latency by method.",
    ["method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
TRANSFERS = Counter(
    "quota_transfers_total",
    "Transfers between buckets by kind (refill, reclaim, top_up, sweep) and outcome.",
    ["kind", "outcome"],
)
TRANSFERRED = Counter(
    "quota_transferred_units_total",
    "Units moved by committed transfers, by kind.",
    ["kind"],
)
MERGES = Counter("quota_merges_total", "Merges: fragments drained from sub-buckets back into main.")
MERGE_SECONDS = Histogram(
    "quota_merge_seconds",
    "Duration of a merge (draining every other sub-bucket into main).",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
RESERVATIONS = Counter(
    "quota_reservations_total",
    "Reservations that ended, by outcome (confirmed, cancelled, expired); each ends exactly once.",
    ["outcome"],
)
# Fills and releases are counted, with their units, by quota_transfers_total and
# quota_transferred_units_total with kind "fill" / "release".
FILL_SECONDS = Histogram(
    "quota_fill_seconds",
    "Duration of a background fill or release by the filler, waiting for the budget's lock included.",
    ["kind"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
SOLD_OUT_CHANGES = Counter(
    "quota_sold_out_changes_total",
    "Budgets marked sold out (to=sold_out) and found available again (to=available).",
    ["to"],
)
SOLD_OUT_REFUSALS = Counter(
    "quota_sold_out_refusals_total",
    "Deductions and reservations refused from a budget's sold-out mark, with no lock and no reclaim round.",
)
POOLS_OPENED = Counter(
    "quota_end_game_pools_opened_total",
    "End games begun: a budget's sub-buckets marked to send new deductions to its pool (sub-bucket 0).",
)
SHARED_REFUSALS = Counter(
    "quota_shared_refusals_total",
    "Refusals decided on a check another request of the same budget had just made.",
)
DEDUCT_WAITS = Counter(
    "quota_deduct_waits_total",
    "Deductions that found their sub-bucket short and waited for an on-demand refill.",
)
AGENT_GRANTS = Counter("quota_agent_grants_total", "Slices granted from main to region agents.")
AGENT_LEASES_LOST = Counter(
    "quota_agent_leases_lost_total", "Agent holdings whose lease ran out: their balance went in doubt."
)
AGENT_UNBACKED_RETURNS = Counter(
    "quota_agent_unbacked_returns_total",
    "Units agents reported as refunded beyond what their holding consumed: kept consumed, not credited.",
)
AGENT_REPORTS_REFUSED = Counter(
    "quota_agent_reports_refused_total",
    "Agent usage reports refused before they changed anything, by reason.",
    ["reason"],
)
AGENT_SESSION_ENDS = Counter(
    "quota_agent_session_ends_total",
    "Agent session streams ended, by reason: ended (by the agent or the network), unread (closed:"
    " too many answers unread), replaced (silent, taken over by a new stream of its agent id),"
    " refused (never began: no Hello, a bad agent id, or its agent id live in another stream).",
    ["reason"],
)
LOOP_FAILURES = Counter(
    "quota_loop_failures_total",
    "Failures of a background loop's pass or of its work on one budget, by loop (sweeper, settlement,"
    " expiry, leases, gauges, filler); the loop goes on with the other budgets and retries next pass.",
    ["loop"],
)
ACCESS_DENIED = Counter(
    "quota_access_denied_total",
    "Calls refused by access control before they reached a handler, by method and status"
    " (UNAUTHENTICATED: no or an unknown identity; PERMISSION_DENIED: a role or budget not granted).",
    ["method", "code"],
)
AGENT_SESSIONS = Gauge("quota_agent_sessions", "Agent session streams open on this center.")
AGENT_RECLAIMS = Counter(
    "quota_agent_reclaims_total",
    "Reclaim orders sent to agents, by outcome (answered, timeout, disconnected).",
    ["outcome"],
)
REBUILDS = Counter("quota_rebuilds_total", "Budgets rebuilt from the ledger after a Redis loss.")
IN_DOUBT_SETTLED = Counter(
    "quota_in_doubt_settled_units_total",
    "In-doubt units settled, by how (log: from the spend log, manual: Settle) and outcome"
    " (consumed, returned: to the main bucket).",
    ["how", "outcome"],
)


class GroupCommitStats(Protocol):
    @property
    def batches_written(self) -> int: ...

    @property
    def rows_written(self) -> int: ...


class _LedgerCollector(Collector):
    """Reads the group committer's own counters at scrape time, so they cannot drift."""

    def __init__(self) -> None:
        self.sources: list[GroupCommitStats] = []

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "quota_ledger_batches",
            "Group-commit batches written to the ledger.",
            value=sum(s.batches_written for s in self.sources),
        )
        yield CounterMetricFamily(
            "quota_ledger_rows",
            "Ledger rows written by group commit.",
            value=sum(s.rows_written for s in self.sources),
        )


LEDGER = _LedgerCollector()
REGISTRY.register(LEDGER)


class SpendLogStats(Protocol):
    @property
    def queued(self) -> int: ...

    @property
    def lag_s(self) -> float: ...

    @property
    def lease_lapsed(self) -> bool: ...


class _SpendLogCollector(Collector):
    """Reads the spend logs' state at scrape time: a flush stuck on PostgreSQL still shows its lag
    growing, and the moment its lease lapses (the center stops spending) shows at once."""

    def __init__(self) -> None:
        self.sources: list[SpendLogStats] = []

    def collect(self) -> Iterator[Metric]:
        sources = list(self.sources)
        if not sources:
            return
        yield GaugeMetricFamily(
            "quota_spend_log_queue",
            "Spend-log entries (served deductions and returns) waiting to be written to PostgreSQL.",
            value=sum(s.queued for s in sources),
        )
        yield GaugeMetricFamily(
            "quota_spend_log_lag_seconds",
            "How far this center's durable spend-log watermark (flushed_until) trails now.",
            value=max(s.lag_s for s in sources),
        )
        yield GaugeMetricFamily(
            "quota_spending_stopped",
            "1 while this center refuses spending because its spend log has not reached PostgreSQL"
            " for longer than QUOTA_CENTER_WRITEBEHIND_LEASE_MS.",
            value=1 if any(s.lease_lapsed for s in sources) else 0,
        )


SPEND_LOG = _SpendLogCollector()
REGISTRY.register(SPEND_LOG)
# One budget's series (remaining, consumed, mode, ...): quota_center/budget_series.py.
BUDGETS = BudgetSeries()
REGISTRY.register(BUDGETS)
