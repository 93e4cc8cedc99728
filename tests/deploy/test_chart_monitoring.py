"""The ServiceMonitor scrapes each pod once; the PrometheusRule carries the repository's rules."""

from __future__ import annotations

import pytest

from tests.deploy.chart import CHART, ROOT, Obj, labels_match, of_kind, pod_labels, render, workloads
from tests.deploy.untyped import load_document

STORES = {"redis": {"url": "redis://redis:6379/0"}, "postgres": {"url": "postgresql://quota@postgres/quota"}}
CHART_RULES = CHART / "files" / "quota.rules.yml"
REPOSITORY_RULES = ROOT / "monitoring" / "rules" / "quota.rules.yml"
ON = {
    **STORES,
    "agents": {"regions": [{"name": "eu", "replicas": 2}, {"name": "us"}]},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
}


def test_chart_rules_are_the_repositorys_rules() -> None:
    # A chart reads only files inside itself, so it carries a copy; this keeps the copy current.
    if not REPOSITORY_RULES.exists():
        pytest.skip(f"{REPOSITORY_RULES.relative_to(ROOT)} does not exist yet")
    assert CHART_RULES.read_bytes() == REPOSITORY_RULES.read_bytes(), (
        f"copy it: cp {REPOSITORY_RULES.relative_to(ROOT)} {CHART_RULES.relative_to(ROOT)}"
    )


def test_prometheus_rule_holds_the_rule_groups_of_the_file() -> None:
    [rule] = of_kind(render(ON), "PrometheusRule")
    assert rule["spec"]["groups"] == load_document(CHART_RULES.read_text(encoding="utf-8"))["groups"]
    assert rule["metadata"]["labels"]["release"] == "prometheus"


def test_monitoring_objects_are_off_by_default() -> None:
    objects = render(STORES)
    assert of_kind(objects, "ServiceMonitor") == []
    assert of_kind(objects, "PrometheusRule") == []


def scraped_services(objects: list[Obj]) -> list[Obj]:
    [monitor] = of_kind(objects, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    return [s for s in of_kind(objects, "Service") if labels_match(selector, s["metadata"]["labels"])]


def test_service_monitor_scrapes_every_pod_once() -> None:
    objects = render(ON)
    services = scraped_services(objects)
    for workload in (w for w in workloads(objects) if w["kind"] != "Job"):
        selecting = [s for s in services if labels_match(s["spec"]["selector"], pod_labels(workload))]
        assert len(selecting) == 1, (
            f"{workload['metadata']['name']} is scraped through {len(selecting)} Services"
        )
        assert "metrics" in {p["name"] for p in selecting[0]["spec"]["ports"]}


def test_service_monitor_labels_agents_with_their_region() -> None:
    [monitor] = of_kind(render(ON), "ServiceMonitor")
    relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_quota_center_region"],
        "targetLabel": "region",
    } in relabelings
