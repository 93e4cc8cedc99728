"""The quota center's Grafana dashboards, generated as JSON next to this file.

    python -m monitoring.dashboards.build            # (re)write monitoring/dashboards/*.json
    python -m monitoring.dashboards.build --check    # exit 1 if the files differ from what it writes

The queries use the metric names of quota_center/metrics.py, region_agent/metrics.py and
region_agent/hot_metrics.py, and the recorded series of monitoring/rules/quota.rules.yml
(names with a colon), which Prometheus must therefore load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from monitoring import RUNBOOK_BASE_URL
from monitoring.dashboards.grafana import (
    Dashboard,
    Panel,
    Query,
    Row,
    dashboards_link,
    query_variable,
    render,
    url_link,
)

HERE = Path(__file__).resolve().parent
TAG = "quota-center"
# gRPC statuses a caller cannot fix (as in the rules' error ratio); the `code` label also carries
# business outcomes (INSUFFICIENT, ...) and the caller's own mistakes (INVALID_ARGUMENT, ...).
SERVER_ERRORS = (
    "UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|ABORTED|UNIMPLEMENTED|DATA_LOSS"
)
SPEND_LOG_LEASE_S = 30.0  # QUOTA_CENTER_WRITEBEHIND_LEASE_MS by default
LAG_WARNING_S = 5.0  # QuotaSpendLogLagging
LATENCY_WARNING_S = 0.5  # QuotaHighLatency
ERROR_RATIO_CRITICAL = 0.05  # QuotaHighErrorRate
NEARLY_EXHAUSTED = 0.1  # QuotaBudgetNearlyExhausted
HEARTBEAT_STALE_S = 30.0  # QuotaAgentSessionDown
LEASE_LAPSING_S = 120.0  # QuotaAgentLeaseLapsing
AGENT = 'instance=~"$agent"'
BUDGET = 'budget="$budget"'


def _rate(metric: str, selector: str = "", by: str = "") -> str:
    """``sum by (by) (rate(metric{selector}[$__rate_interval]))``: per second, over the step."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[$__rate_interval]))"


def _increase(metric: str, selector: str = "", by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({metric}{{{selector}}}[$__rate_interval]))"


def _p99(bucket: str, selector: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({bucket}{{{selector}}}[$__rate_interval])))"


def _per_second(title: str, description: str, expr: str, legend: str, *, stacked: bool = False) -> Panel:
    """A time series of one rate a second (from 0), one line per legend."""
    return Panel(title, description, (Query(expr, legend),), unit="reqps", min=0, stacked=stacked)


def _links() -> tuple[dict[str, object], ...]:
    return (dashboards_link(TAG), url_link("Runbooks", RUNBOOK_BASE_URL + "README.md"))


def overview() -> Dashboard:
    service = Row(
        "Service",
        (
            Panel(
                "Centers up",
                'Center processes Prometheus scrapes now (quota_build_info{component="center"}).',
                (Query('count(quota_build_info{component="center"}) or vector(0)', instant=True),),
                kind="stat",
                width=4,
                height=4,
                base_colour="red",
                steps=((1, "green"),),
            ),
            Panel(
                "Center targets down",
                "Targets of a job that ran a center within a day that do not answer scrapes (QuotaCenterDown).",
                (
                    Query(
                        "count(up == 0 and on (job) group by (job)"
                        ' (max_over_time(quota_build_info{component="center"}[1d]))) or vector(0)',
                        instant=True,
                    ),
                ),
                kind="stat",
                width=4,
                height=4,
                steps=((1, "red"),),
            ),
            Panel(
                "Agents up",
                "Region agent processes Prometheus scrapes now.",
                (Query('count(quota_build_info{component="agent"}) or vector(0)', instant=True),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
            ),
            Panel(
                "Agent sessions",
                "Agent session streams open on the centers (quota_agent_sessions, summed).",
                (Query("sum(quota_agent_sessions) or vector(0)", instant=True),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
            ),
            Panel(
                "Centers not spending",
                "Centers refusing spending because their spend log has not reached PostgreSQL"
                " for the lease (QuotaCenterSpendingStopped).",
                (Query("sum(quota_spending_stopped) or vector(0)", instant=True),),
                kind="stat",
                width=4,
                height=4,
                steps=((1, "red"),),
            ),
            Panel(
                "Unbalanced budgets",
                "Budgets whose last audit found Redis and the ledger disagreeing (QuotaAuditUnbalanced).",
                (Query("max(quota_audit_unbalanced_budgets) or vector(0)", instant=True),),
                kind="stat",
                width=4,
                height=4,
                steps=((1, "red"),),
            ),
        ),
    )
    requests = Row(
        "Requests",
        (
            Panel(
                "Requests by method",
                "Calls a second at the center and at the agents, by method.",
                (Query("job_method:quota_requests:rate5m", "{{component}} {{method}} ({{job}})"),),
                unit="reqps",
                min=0,
            ),
            Panel(
                "Results by code",
                "Calls a second by result: business outcomes (OK, INSUFFICIENT, EXISTS, ...) and gRPC statuses.",
                (
                    Query(
                        "sum by (component, code) (job_method_code:quota_requests:rate5m)",
                        "{{component}} {{code}}",
                    ),
                ),
                unit="reqps",
                min=0,
                stacked=True,
            ),
            Panel(
                "Error ratio by method",
                "Share of calls that failed with a gRPC error a caller cannot fix (UNAVAILABLE, INTERNAL,"
                " DEADLINE_EXCEEDED, ...); refusals such as INSUFFICIENT are not errors. Line: QuotaHighErrorRate.",
                (
                    Query(
                        "job_method:quota_request_errors:ratio_rate5m", "{{component}} {{method}} ({{job}})"
                    ),
                ),
                unit="percentunit",
                min=0,
                steps=((ERROR_RATIO_CRITICAL, "red"),),
            ),
            Panel(
                "p99 latency by method",
                "99th percentile of call durations. Line: QuotaHighLatency (spending calls only).",
                (Query("job_method:quota_request_seconds:p99_rate5m", "{{component}} {{method}} ({{job}})"),),
                unit="s",
                min=0,
                steps=((LATENCY_WARNING_S, "orange"),),
            ),
            Panel(
                "Agents' local hit ratio",
                "Spending requests the agents decided from their slices: local / (local + forwarded).",
                (Query("job:quota_region_agent_local_hit:ratio_rate5m", "{{job}}"),),
                unit="percentunit",
                min=0,
                max=1,
            ),
            Panel(
                "Spend-log lag",
                "How far each center's durable spend-log watermark trails now. Lines: QuotaSpendLogLagging,"
                " and the lease after which the center stops spending.",
                (Query("quota_spend_log_lag_seconds", "{{instance}}"),),
                unit="s",
                min=0,
                steps=((LAG_WARNING_S, "orange"), (SPEND_LOG_LEASE_S, "red")),
            ),
        ),
    )
    budgets = Row(
        "Budgets",
        (
            Panel(
                "Budgets nearest exhaustion",
                "The 10 budgets with the smallest share of their total left (budgets shown by name only).",
                (Query('bottomk(10, budget:quota_budget_remaining:ratio{budget!="_other"})', instant=True),),
                kind="table",
                unit="percentunit",
                base_colour="red",
                steps=((NEARLY_EXHAUSTED, "green"),),
            ),
            Panel(
                "Units in doubt",
                "Units held by holders whose state is unknown: counted as spent, not issued again until"
                ' settled (QuotaInDoubtStuck). budget="_other" adds up the budgets not shown by name.',
                (Query("budget:quota_budget_in_doubt:max > 0", "{{budget}} ({{job}})"),),
                min=0,
            ),
            Panel(
                "Budgets in use",
                "Budgets each center looks after (its active set); the most active have series by name.",
                (Query("max by (job) (quota_budgets_tracked)", "{{job}}"),),
                min=0,
            ),
            Panel(
                "Redis rebuilds",
                "Budgets rebuilt from the ledger after a Redis loss (QuotaRedisRebuilt).",
                (Query(_increase("quota_rebuilds_total", by="instance"), "{{instance}}"),),
                min=0,
            ),
        ),
    )
    return Dashboard(
        name="overview",
        uid="quota-overview",
        title="Quota center / Overview",
        description="Requests, errors, latency, budgets near exhaustion or in doubt, the spend log, and who is up.",
        rows=(service, requests, budgets),
        links=_links(),
    )


def budget() -> Dashboard:
    numbers = Row(
        "Budget $budget",
        (
            Panel(
                "Remaining",
                "What the budget can still issue: total - consumed - reserved - in doubt.",
                (Query(f"max(quota_budget_remaining{{{BUDGET}}})"),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
            ),
            Panel(
                "Total",
                "The budget's total (quota_budget_size).",
                (Query(f"max(quota_budget_size{{{BUDGET}}})"),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
            ),
            Panel(
                "Left",
                "Remaining / total (QuotaBudgetNearlyExhausted below 10 %).",
                (Query(f"max(budget:quota_budget_remaining:ratio{{{BUDGET}}})"),),
                kind="stat",
                unit="percentunit",
                width=4,
                height=4,
                base_colour="red",
                steps=((NEARLY_EXHAUSTED, "green"),),
            ),
            Panel(
                "In doubt",
                "Units of this budget held by holders whose state is unknown.",
                (Query(f"max(quota_budget_in_doubt{{{BUDGET}}})"),),
                kind="stat",
                width=4,
                height=4,
                steps=((1, "orange"),),
            ),
            Panel(
                "Mode",
                "Allocation mode: normal, scarce (the end game begins) or central (every deduction at the pool).",
                (Query(f"max by (mode) (quota_budget_mode{{{BUDGET}}}) == 1", "{{mode}}"),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
                show_name=True,
            ),
            Panel(
                "Consumed",
                "Units consumed (deducted less returned).",
                (Query(f"max(quota_budget_consumed{{{BUDGET}}})"),),
                kind="stat",
                width=4,
                height=4,
                base_colour="blue",
            ),
            Panel(
                "Remaining and consumed",
                "The gauges are recomputed every QUOTA_CENTER_GAUGE_INTERVAL_S (15 s).",
                (
                    Query(f"max(quota_budget_size{{{BUDGET}}})", "total"),
                    Query(f"max(quota_budget_remaining{{{BUDGET}}})", "remaining"),
                    Query(f"max(quota_budget_consumed{{{BUDGET}}})", "consumed"),
                ),
                min=0,
            ),
            Panel(
                "Consumption rate",
                "Units consumed a second (returns make it negative).",
                (Query(f"max(deriv(quota_budget_consumed{{{BUDGET}}}[$__rate_interval]))", "consumed/s"),),
            ),
            Panel(
                "Mode over time",
                "Which allocation mode the budget was in.",
                (Query(f"max by (mode) (quota_budget_mode{{{BUDGET}}})", "{{mode}}"),),
                kind="state-timeline",
                base_colour="transparent",
                steps=((1, "blue"),),
            ),
            Panel(
                "In doubt over time",
                "Settled from the spend log, by an agent's next report, or by quotactl settle.",
                (Query(f"max(quota_budget_in_doubt{{{BUDGET}}})", "in doubt"),),
                min=0,
            ),
        ),
    )
    agents = Row(
        "Agents' slices of $budget",
        (
            Panel(
                "Available at each agent",
                "Units each agent may still spend of its slice. An agent shows the budgets it used most"
                ' recently by name and adds up the rest under budget="_other".',
                (
                    Query(
                        f"sum by (instance) (quota_region_agent_slice_available{{{BUDGET}}})", "{{instance}}"
                    ),
                ),
                min=0,
                stacked=True,
            ),
            Panel(
                "Reserved at each agent",
                "Units held in reservations at each agent.",
                (
                    Query(
                        f"sum by (instance) (quota_region_agent_slice_reserved{{{BUDGET}}})", "{{instance}}"
                    ),
                ),
                min=0,
                stacked=True,
            ),
            Panel(
                "Lease left at each agent",
                "Seconds until each agent's lease of the budget runs out (renewed every heartbeat)."
                " Line: QuotaAgentLeaseLapsing.",
                (
                    Query(
                        f"min by (instance) (quota_region_agent_lease_remaining_seconds{{{BUDGET}}})",
                        "{{instance}}",
                    ),
                ),
                unit="s",
                min=0,
                base_colour="red",
                steps=((LEASE_LAPSING_S, "green"),),
            ),
            Panel(
                "Lease valid at each agent",
                "1 while the agent may spend its slice (lease valid, holding not lost).",
                (Query(f"min by (instance) (quota_region_agent_lease_valid{{{BUDGET}}})", "{{instance}}"),),
                kind="state-timeline",
                base_colour="red",
                steps=((1, "green"),),
            ),
        ),
    )
    return Dashboard(
        name="budget",
        uid="quota-budget",
        title="Quota center / Budget",
        description="One budget: remaining, consumption, mode, in doubt, and the agents' slices of it.",
        rows=(numbers, agents),
        variables=(query_variable("budget", "Budget", "label_values(quota_budget_size, budget)"),),
        links=_links(),
    )


def agents() -> Dashboard:
    serving = Row(
        "Serving",
        (
            Panel(
                "Local hit ratio",
                "Spending requests decided from the slice: local / (local + forwarded).",
                (Query(f"instance:quota_region_agent_local_hit:ratio_rate5m{{{AGENT}}}", "{{instance}}"),),
                unit="percentunit",
                min=0,
                max=1,
            ),
            _per_second(
                "Requests by method",
                "Calls a second at each agent.",
                _rate("quota_region_agent_requests_total", AGENT, "instance, method"),
                "{{instance}} {{method}}",
            ),
            _per_second(
                "Forwards by reason",
                "Requests sent to the center, by why the slice did not serve them.",
                _rate("quota_region_agent_forwarded_total", AGENT, "reason"),
                "{{reason}}",
                stacked=True,
            ),
            _per_second(
                "Forward calls to the center",
                "Center calls carrying forwarded deductions: alone (a Deduct) or batch (a DeductBatch).",
                _rate("quota_region_agent_forward_calls_total", AGENT, "how"),
                "{{how}}",
                stacked=True,
            ),
            Panel(
                "p99 latency",
                "99th percentile of call durations at each agent (from the slice: microseconds).",
                (
                    Query(
                        _p99("quota_region_agent_request_seconds_bucket", AGENT, "instance"), "{{instance}}"
                    ),
                ),
                unit="s",
                min=0,
                steps=((LATENCY_WARNING_S, "orange"),),
            ),
            _per_second(
                "gRPC errors",
                "Calls that failed with a gRPC error a caller cannot fix.",
                _rate(
                    "quota_region_agent_requests_total", f'{AGENT},code=~"{SERVER_ERRORS}"', "instance, code"
                ),
                "{{instance}} {{code}}",
            ),
        ),
    )
    slices = Row(
        "Slices",
        (
            _per_second(
                "Refills by result",
                "Slice requests answered by the center, by result code.",
                _rate("quota_region_agent_refills_total", AGENT, "code"),
                "{{code}}",
                stacked=True,
            ),
            Panel(
                "Refill p99",
                "Time from a SliceRequest to its Grant.",
                (Query(_p99("quota_region_agent_refill_seconds_bucket", AGENT, "instance"), "{{instance}}"),),
                unit="s",
                min=0,
            ),
            Panel(
                "Units granted and given back",
                "Units a second granted to the agents, and given back to the center (idle or reclaimed).",
                (
                    Query(_rate("quota_region_agent_refilled_units_total", AGENT), "granted"),
                    Query(
                        _rate("quota_region_agent_released_units_total", AGENT, "why"), "released ({{why}})"
                    ),
                ),
                min=0,
            ),
            _per_second(
                "Reclaim orders answered",
                "Orders from the center to give back what the agent holds (the budget's end game).",
                _rate("quota_region_agent_reclaim_orders_total", AGENT, "instance"),
                "{{instance}}",
            ),
        ),
    )
    session = Row(
        "Session and leases",
        (
            Panel(
                "Session up",
                "1 while the agent's session stream to the center is open (QuotaAgentSessionDown).",
                (Query(f"quota_region_agent_session_up{{{AGENT}}}", "{{instance}}"),),
                kind="state-timeline",
                base_colour="red",
                steps=((1, "green"),),
            ),
            Panel(
                "Heartbeat age",
                "Seconds since the center last answered a heartbeat; leases are renewed by these answers.",
                (
                    Query(
                        f"time() - quota_region_agent_heartbeat_answered_timestamp_seconds{{{AGENT}}}",
                        "{{instance}}",
                    ),
                ),
                unit="s",
                min=0,
                steps=((HEARTBEAT_STALE_S, "red"),),
            ),
            Panel(
                "Lowest lease margin",
                "Per agent, the soonest lease of a budget it still holds units of (QuotaAgentLeaseLapsing).",
                (
                    Query(
                        "min by (instance) ("
                        f"quota_region_agent_lease_remaining_seconds{{{AGENT}}}"
                        " and on (job, instance, budget)"
                        " (quota_region_agent_slice_available + quota_region_agent_slice_reserved > 0))",
                        "{{instance}}",
                    ),
                ),
                unit="s",
                min=0,
                base_colour="red",
                steps=((LEASE_LAPSING_S, "green"),),
            ),
            Panel(
                "Budgets not spendable",
                "Budgets whose lease is not valid at the agent (lapsed, or the holding was lost).",
                (
                    Query(
                        f"count by (instance) (quota_region_agent_lease_valid{{{AGENT}}} == 0)",
                        "{{instance}}",
                    ),
                ),
                min=0,
            ),
            Panel(
                "Session reconnects and errors",
                "Session streams (re)opened, and streams that failed or SessionError messages.",
                (
                    Query(
                        _increase("quota_region_agent_session_reconnects_total", AGENT, "instance"),
                        "{{instance}} reconnects",
                    ),
                    Query(
                        _increase("quota_region_agent_session_errors_total", AGENT, "instance"),
                        "{{instance}} errors",
                    ),
                ),
                min=0,
            ),
            _per_second(
                "Access denied",
                "Calls refused by the agent's access control, by method and status.",
                _rate("quota_region_agent_access_denied_total", AGENT, "instance, method, code"),
                "{{instance}} {{method}} {{code}}",
            ),
        ),
    )
    center = Row(
        "Agents at the center",
        (
            Panel(
                "Grants and lost leases",
                "Slices granted to agents a second, and holdings whose lease ran out (their balance went in doubt).",
                (
                    Query(_rate("quota_agent_grants_total"), "grants/s"),
                    Query(_increase("quota_agent_leases_lost_total"), "leases lost"),
                ),
                min=0,
            ),
            _per_second(
                "Reclaim orders by outcome",
                "Orders sent to agents: answered, timeout, disconnected.",
                _rate("quota_agent_reclaims_total", by="outcome"),
                "{{outcome}}",
                stacked=True,
            ),
            Panel(
                "Session ends by reason",
                "ended, unread (closed: too many answers unread), replaced, refused.",
                (Query(_increase("quota_agent_session_ends_total", by="reason"), "{{reason}}"),),
                min=0,
            ),
            Panel(
                "Reports refused",
                "Agents' usage reports refused before they changed anything (QuotaAgentReportsRefused).",
                (Query(_increase("quota_agent_reports_refused_total", by="reason"), "{{reason}}"),),
                min=0,
                steps=((1, "red"),),
            ),
        ),
    )
    return Dashboard(
        name="agents",
        uid="quota-agents",
        title="Quota center / Agents",
        description="Region agents: local hit ratio, forwards, refills, sessions and lease margins.",
        rows=(serving, slices, session, center),
        variables=(
            query_variable(
                "agent", "Agent", 'label_values(quota_build_info{component="agent"}, instance)', multi=True
            ),
        ),
        links=_links(),
    )


def dependencies() -> Dashboard:
    ledger = Row(
        "PostgreSQL: ledger and spend log",
        (
            Panel(
                "Ledger batches and rows",
                "Group-commit batches and ledger rows written a second.",
                (
                    Query(_rate("quota_ledger_batches_total", by="instance"), "{{instance}} batches"),
                    Query(_rate("quota_ledger_rows_total", by="instance"), "{{instance}} rows"),
                ),
                min=0,
            ),
            Panel(
                "Rows per batch",
                "Ledger rows sharing one transaction: grows as PostgreSQL slows down.",
                (
                    Query(
                        f"{_rate('quota_ledger_rows_total', by='instance')}"
                        f" / {_rate('quota_ledger_batches_total', by='instance')}",
                        "{{instance}}",
                    ),
                ),
                min=0,
            ),
            Panel(
                "Spend-log lag",
                "How far the durable spend-log watermark trails now. Lines: QuotaSpendLogLagging and the"
                " lease (QUOTA_CENTER_WRITEBEHIND_LEASE_MS) after which the center stops spending.",
                (Query("quota_spend_log_lag_seconds", "{{instance}}"),),
                unit="s",
                min=0,
                steps=((LAG_WARNING_S, "orange"), (SPEND_LOG_LEASE_S, "red")),
            ),
            Panel(
                "Spend-log queue",
                "Served deductions and returns waiting to be written to PostgreSQL.",
                (Query("quota_spend_log_queue", "{{instance}}"),),
                min=0,
            ),
            Panel(
                "Spending stopped",
                "1 while the center refuses spending: its spend log has not reached PostgreSQL for the lease.",
                (Query("quota_spending_stopped", "{{instance}}"),),
                kind="state-timeline",
                steps=((1, "red"),),
            ),
        ),
    )
    redis = Row(
        "Redis: buckets and transfers",
        (
            Panel(
                "Budgets rebuilt",
                "Budgets rebuilt from the ledger after their buckets were lost (QuotaRedisRebuilt).",
                (Query(_increase("quota_rebuilds_total", by="instance"), "{{instance}}"),),
                min=0,
                steps=((1, "orange"),),
            ),
            Panel(
                "In-doubt units settled",
                "Units a second settled from the spend log or by hand, consumed or returned to main.",
                (
                    Query(
                        _rate("quota_in_doubt_settled_units_total", by="how, outcome"), "{{how}} {{outcome}}"
                    ),
                ),
                min=0,
            ),
            Panel(
                "Transfers by kind and outcome",
                "Movements between buckets a second (refill, fill, release, grant, reclaim, ...).",
                (Query(_rate("quota_transfers_total", by="kind, outcome"), "{{kind}} {{outcome}}"),),
                unit="ops",
                min=0,
                stacked=True,
            ),
            Panel(
                "Merges and waits",
                "Merges a second, and deductions that waited for an on-demand refill.",
                (
                    Query(_rate("quota_merges_total"), "merges"),
                    Query(_rate("quota_deduct_waits_total"), "deduction waits"),
                ),
                unit="ops",
                min=0,
            ),
        ),
    )
    loops = Row(
        "Background loops",
        (
            Panel(
                "Loop failures",
                "Failed passes or budgets of each background loop (QuotaLoopFailures when they go on).",
                (
                    Query(
                        _increase("quota_loop_failures_total", by="instance, loop"), "{{instance}} {{loop}}"
                    ),
                ),
                min=0,
                steps=((1, "orange"),),
            ),
            Panel(
                "Fill and release p99",
                "Duration of the filler's background fills and releases, waiting for the budget's lock included.",
                (Query(_p99("quota_fill_seconds_bucket", "", "kind"), "{{kind}}"),),
                unit="s",
                min=0,
            ),
        ),
    )
    return Dashboard(
        name="dependencies",
        uid="quota-dependencies",
        title="Quota center / Dependencies",
        description="PostgreSQL (ledger, spend log), Redis (rebuilds, transfers) and the background loops.",
        rows=(ledger, redis, loops),
        links=_links(),
    )


def dashboards() -> tuple[Dashboard, ...]:
    return (overview(), budget(), agents(), dependencies())


def rendered() -> dict[str, str]:
    """File name -> contents, for every dashboard."""
    return {f"{d.name}.json": render(d, TAG) for d in dashboards()}


def differences(directory: Path) -> list[str]:
    """What differs between ``directory`` and the generated files; empty when they are the same."""
    wanted = rendered()
    problems: list[str] = []
    for name, text in wanted.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name}: differs from what build.py writes")
    # A dashboard renamed or removed in the code must not linger as a stale file.
    problems += [
        f"{p.name}: not generated by build.py"
        for p in sorted(directory.glob("*.json"))
        if p.name not in wanted
    ]
    return problems


def write(directory: Path) -> None:
    for name, text in rendered().items():
        (directory / name).write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.dashboards.build",
        description="Write the quota center's Grafana dashboards as JSON, or check the written ones.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the files are not up to date"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="directory of the JSON files (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if not args.check:
        write(args.out)
        return 0
    problems = differences(args.out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("regenerate with: python -m monitoring.dashboards.build", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
