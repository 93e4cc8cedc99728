"""The metric names the processes export, as sample names appear in a scrape.

The one list the rules, the dashboards and the runbooks are checked against. Written out from
quota_center/metrics.py, quota_center/budget_series.py, region_agent/metrics.py and
region_agent/hot_metrics.py, and checked against live scrapes of a center and an agent with
budgets in use (tests/e2e/test_metrics_scrape.py): a name here that the processes do not export
fails that test.
"""

from __future__ import annotations


def _histogram(name: str) -> frozenset[str]:
    return frozenset({f"{name}_bucket", f"{name}_sum", f"{name}_count"})


CENTER = frozenset(
    {
        "quota_build_info",
        "quota_requests_total",
        "quota_transfers_total",
        "quota_transferred_units_total",
        "quota_merges_total",
        "quota_reservations_total",
        "quota_sold_out_changes_total",
        "quota_sold_out_refusals_total",
        "quota_end_game_pools_opened_total",
        "quota_shared_refusals_total",
        "quota_deduct_waits_total",
        "quota_agent_grants_total",
        "quota_agent_leases_lost_total",
        "quota_agent_unbacked_returns_total",
        "quota_agent_reports_refused_total",
        "quota_agent_session_ends_total",
        "quota_loop_failures_total",
        "quota_access_denied_total",
        "quota_agent_sessions",
        "quota_agent_reclaims_total",
        "quota_rebuilds_total",
        "quota_in_doubt_settled_units_total",
        "quota_ledger_batches_total",
        "quota_ledger_rows_total",
        "quota_spend_log_queue",
        "quota_spend_log_lag_seconds",
        "quota_spending_stopped",
        "quota_budget_size",
        "quota_budget_remaining",
        "quota_budget_consumed",
        "quota_budget_in_doubt",
        "quota_budget_mode",
        "quota_budgets_tracked",
        "quota_audit_unbalanced_budgets",
    }
    | _histogram("quota_request_seconds")
    | _histogram("quota_merge_seconds")
    | _histogram("quota_fill_seconds")
)

AGENT = frozenset(
    {
        "quota_build_info",
        "quota_region_agent_requests_total",
        "quota_region_agent_served_total",
        "quota_region_agent_forwarded_total",
        "quota_region_agent_forward_calls_total",
        "quota_region_agent_refills_total",
        "quota_region_agent_refilled_units_total",
        "quota_region_agent_released_units_total",
        "quota_region_agent_reclaim_orders_total",
        "quota_region_agent_access_denied_total",
        "quota_region_agent_session_reconnects_total",
        "quota_region_agent_session_errors_total",
        "quota_region_agent_slice_available",
        "quota_region_agent_slice_reserved",
        "quota_region_agent_lease_remaining_seconds",
        "quota_region_agent_lease_valid",
        "quota_region_agent_session_up",
        "quota_region_agent_heartbeat_answered_timestamp_seconds",
    }
    | _histogram("quota_region_agent_request_seconds")
    | _histogram("quota_region_agent_refill_seconds")
)

# Made by Prometheus for every target, not by the processes.
PROMETHEUS = frozenset({"up"})

KNOWN = CENTER | AGENT | PROMETHEUS
