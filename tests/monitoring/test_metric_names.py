"""Every metric the rules, the dashboards and the runbooks read is one the processes export (or a
series the rules record): a renamed metric cannot leave a silent alert or an empty graph."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tests.monitoring.known_metrics import KNOWN
from tests.monitoring.promql import metric_names
from tests.monitoring.sources import dashboard_exprs, recordings, rules, runbook_exprs


def unknown_names(exprs: Iterable[tuple[str, str]], known: frozenset[str]) -> dict[str, set[str]]:
    """where -> the names its expression reads that are not in ``known``."""
    out: dict[str, set[str]] = {}
    for where, expr in exprs:
        unknown = metric_names(expr) - known
        if unknown:
            out.setdefault(where, set()).update(unknown)
    return out


def _known() -> frozenset[str]:
    return KNOWN | {r["record"] for r in recordings()}


def test_rules_read_known_metrics() -> None:
    exprs = [(r.get("alert") or r["record"], r["expr"]) for r in rules()]
    assert not unknown_names(exprs, _known())


def test_dashboards_read_known_metrics() -> None:
    exprs = dashboard_exprs()
    assert exprs, "no dashboard queries"
    assert not unknown_names(exprs, _known())


def test_runbooks_read_known_metrics() -> None:
    exprs = runbook_exprs()
    assert exprs, "no PromQL in the runbooks"
    assert not unknown_names(exprs, _known())


def test_an_old_or_misspelt_name_is_reported() -> None:
    exprs = [("old", "sum(rate(agent_served_total[5m]))"), ("ok", "quota_spending_stopped == 1")]
    assert unknown_names(exprs, KNOWN) == {"old": {"agent_served_total"}}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (job, le) (rate(a_bucket{code=~"UNKNOWN|b_total"}[5m])) / on (job) group_left b offset 10m',
            {"a_bucket", "b"},
        ),
        ("histogram_quantile(0.99, x:y:rate5m) > 0.5 and time() - c > 3e1", {"x:y:rate5m", "c"}),
        ('max(d{budget="$budget"}) or vector(0) unless e[$__rate_interval]', {"d", "e"}),
        ("count(up == bool 0) by (job)", {"up"}),
        ('label_values(quota_build_info{component="agent"}, instance)', {"quota_build_info"}),
    ],
)
def test_metric_names_keeps_names_and_drops_the_rest(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
