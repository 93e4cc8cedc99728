"""The Prometheus rules: valid, unit-tested for every alert both ways, labelled and linked."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import grpc

from monitoring import RUNBOOK_BASE_URL
from monitoring.dashboards.build import SERVER_ERRORS
from quota.v1 import common_pb2
from tests.monitoring.promql import metric_names, run_promtool
from tests.monitoring.sources import RULE_TESTS, RULES, alerts, recordings, rule_tests, runbook

SEVERITIES = frozenset({"critical", "warning", "info"})
ANNOTATIONS = frozenset({"summary", "description", "runbook_url"})


def _cases(tests: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for test in tests.get("tests", []):
        yield from test.get("alert_rule_test", [])


def coverage_problems(alert_names: Iterable[str], tests: dict[str, Any]) -> list[str]:
    """What the unit tests leave out: an alert with no case where it fires, or none where it does not."""
    fires = {c["alertname"] for c in _cases(tests) if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in _cases(tests) if not c.get("exp_alerts")}
    problems: list[str] = []
    for name in alert_names:
        if name not in fires:
            problems.append(f"{name}: no case where it fires")
        if name not in quiet:
            problems.append(f"{name}: no case where it does not fire")
    return problems


def test_rules_pass_promtool_check() -> None:
    done = run_promtool("check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_pass_their_unit_tests() -> None:
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert rule_tests()["rule_files"] == [RULES.name]


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    assert not coverage_problems([a["alert"] for a in alerts()], rule_tests())


def test_coverage_names_alerts_missing_a_case() -> None:
    tests = {
        "tests": [
            {
                "alert_rule_test": [
                    {"alertname": "Fires", "eval_time": "5m", "exp_alerts": [{"exp_labels": {}}]},
                    {"alertname": "Quiet", "eval_time": "5m", "exp_alerts": []},
                    {"alertname": "Quiet", "eval_time": "9m"},
                ]
            }
        ]
    }
    assert coverage_problems(["Fires", "Quiet", "Untested"], tests) == [
        "Fires: no case where it does not fire",
        "Quiet: no case where it fires",
        "Untested: no case where it fires",
        "Untested: no case where it does not fire",
    ]


def test_firing_cases_check_severity_and_every_annotation() -> None:
    # promtool compares labels and annotations in full, so a case that names them checks them all.
    for case in _cases(rule_tests()):
        for expected in case.get("exp_alerts") or []:
            where = f"{case['alertname']} at {case['eval_time']}"
            assert expected.get("exp_labels", {}).get("severity") in SEVERITIES, where
            assert set(expected.get("exp_annotations", {})) == ANNOTATIONS, where


def test_alerts_are_named_once_labelled_and_linked_to_their_runbook() -> None:
    names = [a["alert"] for a in alerts()]
    assert names, "no alerts in the rules"
    assert len(names) == len(set(names)), names
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert set(alert["annotations"]) == ANNOTATIONS, name
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOK_BASE_URL}{name}.md", name


def test_every_recording_rule_is_checked_by_a_unit_test() -> None:
    tested = set[str]().union(
        *(metric_names(t["expr"]) for test in rule_tests()["tests"] for t in test.get("promql_expr_test", []))
    )
    recorded = {r["record"] for r in recordings()}
    assert recorded, "no recording rules"
    assert not recorded - tested


def test_errors_are_grpc_statuses_and_the_same_everywhere() -> None:
    rule = next(r for r in recordings() if r["record"] == "job_method:quota_request_errors:ratio_rate5m")
    found = re.search(r'code=~"([^"]+)"', rule["expr"])
    assert found is not None, rule["expr"]
    errors = found.group(1)
    assert errors == SERVER_ERRORS, "the dashboards count other errors than the rules"
    assert f'code=~"{errors}"' in runbook("QuotaHighErrorRate")
    statuses = {code.name for code in grpc.StatusCode} - {"OK"}
    # A business outcome (quota.v1.ResultCode) in the `code` label is an answer, not an error.
    outcomes = {name.removeprefix("RESULT_CODE_") for name, _ in common_pb2.ResultCode.items()}
    assert set(errors.split("|")) <= statuses - outcomes
