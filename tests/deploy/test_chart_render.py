"""The chart lints clean under --strict and renders objects Kubernetes accepts."""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest

from tests.deploy.chart import CHART, CI_VALUES, Obj, lint, render, values_file
from tests.deploy.untyped import Invalid, SchemaMissing, validate

# The chart's minimum (kubeVersion in Chart.yaml: native gRPC probes), a current release, and the
# newest kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSIONS = ("1.27", "1.34", "1.37")
# Prometheus Operator kinds: not in Kubernetes' schemas, checked by structure below.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
STORES = {"redis": {"url": "redis://redis:6379/0"}, "postgres": {"url": "postgresql://quota@postgres/quota"}}


def test_there_are_ci_values_files() -> None:
    names = {path.name for path in CI_VALUES}
    assert {"default-values.yaml", "tls-three-regions-servicemonitor-values.yaml"} <= names


def test_lint_strict_is_clean(ci_values: Path) -> None:
    assert lint(values_file(ci_values)) == []


def test_lint_applies_the_values_schema() -> None:
    # A grace period of exactly delay + drain would let the kubelet kill a center mid-drain.
    findings = lint({**STORES, "center": {"shutdown": {"marginS": 0}}})
    assert any("marginS" in finding for finding in findings), findings


def test_every_object_is_valid_kubernetes(objects: list[Obj]) -> None:
    checked = 0
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                validate(obj, version)
            except (Invalid, SchemaMissing) as exc:
                pytest.fail(f"Kubernetes {version}: {exc}")
        checked += 1
    assert checked >= 8


def test_the_validator_rejects_an_unknown_field() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(Invalid, match="portz"):
        validate(service, KUBERNETES_VERSIONS[1])


def check_service_monitor(obj: Obj) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    spec = obj["spec"]
    assert spec["selector"]["matchLabels"], "a ServiceMonitor must select Services"
    assert spec["endpoints"], "a ServiceMonitor needs an endpoint"
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] == "metrics"
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings"}


def check_prometheus_rule(obj: Obj) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    groups = obj["spec"]["groups"]
    assert groups, "a PrometheusRule needs rule groups"
    for group in groups:
        assert group["name"], group
        assert group["rules"], group
        for rule in group["rules"]:
            assert rule["expr"], rule
            assert ("alert" in rule) != ("record" in rule), f"a rule is an alert or a record: {rule}"


def test_prometheus_operator_objects_are_well_formed(objects: list[Obj]) -> None:
    for obj in objects:
        assert obj["metadata"]["name"]
        if obj["kind"] == "ServiceMonitor":
            check_service_monitor(obj)
        elif obj["kind"] == "PrometheusRule":
            check_prometheus_rule(obj)


def test_the_stores_are_required() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"redis\.url or redis\.existingSecret"):
        render({})
    with pytest.raises(helm.HelmRenderError, match=r"postgres\.url or postgres\.existingSecret"):
        render({"redis": STORES["redis"]})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"QUOTA_CENTER_GRPC_PORT": "1"}, "set by the chart"),
        ({"QUOTA_CENTER_SHUTDOWN_DELAY_MS": "0"}, "set by the chart"),
        ({"REGION_AGENT_REGION": "eu"}, "REGION_AGENT_REGION"),
    ],
)
def test_extra_settings_cannot_override_the_chart(settings: Obj, message: str) -> None:
    # A variable set twice is left to the kubelet's choice: the grace period could then disagree.
    with pytest.raises((helm.HelmRenderError, helm.HelmValuesError), match=message):
        render({**STORES, "center": {"extraSettings": settings}})


def test_access_file_without_tls_is_refused() -> None:
    # The center refuses to start so (nobody could be identified); the chart says it at render.
    with pytest.raises(helm.HelmRenderError, match=r"needs center\.tls\.enabled"):
        render({**STORES, "center": {"access": {"content": "[identities.a]\nroles = ['admin']\n"}}})


def test_chart_directory_is_complete() -> None:
    for name in ("Chart.yaml", "values.yaml", "values.schema.json", "README.md", "files/quota.rules.yml"):
        assert (CHART / name).is_file(), name
