"""Prometheus metrics of the center, served on their own port (settings: METRICS_PORT)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

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
MODE = Gauge(
    "quota_budget_mode",
    "Allocation mode of a budget, one series per mode set to 1 for the current one.",
    ["budget", "mode"],
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
REMAINING = Gauge(
    "quota_budget_remaining",
    "What a budget can still issue: total - consumed - reserved - in doubt.",
    ["budget"],
)
CONSUMED = Gauge("quota_budget_consumed", "Consumed units of a budget (deducted - returned).", ["budget"])
IN_DOUBT = Gauge(
    "quota_budget_in_doubt", "Units of a budget held by holders whose state is unknown.", ["budget"]
)
IN_DOUBT_SETTLED = Counter(
    "quota_in_doubt_settled_units_total",
    "In-doubt units settled, by how (log: from the spend log, manual: Settle) and outcome"
    " (consumed, returned: to the main bucket).",
    ["how", "outcome"],
)
SPEND_LOG_QUEUE = Gauge(
    "quota_spend_log_queue",
    "Spend-log entries (served deductions and returns) waiting to be written to PostgreSQL.",
)
SPEND_LOG_LAG = Gauge(
    "quota_spend_log_lag_seconds",
    "How far this center's durable spend-log watermark (flushed_until) trails now.",
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


def observe_budget(budget_id: str, available: int, consumed: int, in_doubt: int) -> None:
    REMAINING.labels(budget_id).set(available)
    CONSUMED.labels(budget_id).set(consumed)
    IN_DOUBT.labels(budget_id).set(in_doubt)


def forget_budget(budget_id: str) -> None:
    """Drop a budget's series (it left the active set, or was closed): a platform's idle budgets
    cost no series. They come back with the next audit of the budget."""
    series: list[tuple[Gauge, tuple[str, ...]]] = [(g, (budget_id,)) for g in (REMAINING, CONSUMED, IN_DOUBT)]
    series += [(MODE, (budget_id, name)) for name in ("normal", "scarce", "central")]
    for gauge, labels in series:
        with contextlib.suppress(KeyError):  # never set in this process
            gauge.remove(*labels)


def observe_mode(budget_id: str, mode: str) -> None:
    for name in ("normal", "scarce", "central"):
        MODE.labels(budget_id, name).set(1 if name == mode else 0)
