"""The center's Deployment: the stop, the migration hook, its Services and budget (its probes:
test_chart_probes.py)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import pytest

from tests.deploy.chart import (
    CHART,
    RELEASE,
    Obj,
    center,
    container,
    env,
    env_value,
    labels_match,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    render_file,
    statefulsets,
    values_file,
)

STORES = {"redis": {"url": "redis://redis:6379/0"}, "postgres": {"url": "postgresql://quota@postgres/quota"}}
TLS_VALUES = "tls-three-regions-servicemonitor-values.yaml"


def shutdown_of(workload: Obj, prefix: str) -> float:
    """Seconds the process serves and drains after SIGTERM, from the env the chart gave it."""
    delay_ms = int(env_value(workload, f"{prefix}SHUTDOWN_DELAY_MS"))
    drain_s = float(env_value(workload, f"{prefix}DRAIN_GRACE_S"))
    return delay_ms / 1000 + drain_s


def test_grace_period_outlasts_the_delay_and_the_drain(objects: list[Obj]) -> None:
    checked = [(center(objects), "QUOTA_CENTER_")] + [(s, "REGION_AGENT_") for s in statefulsets(objects)]
    for workload, prefix in checked:
        grace = pod_spec(workload)["terminationGracePeriodSeconds"]
        assert grace > shutdown_of(workload, prefix), workload["metadata"]["name"]


@pytest.mark.parametrize(("delay_ms", "drain_s", "margin_s"), [(5000, 10, 5), (12345, 7.5, 0.5), (0, 0, 1)])
def test_grace_period_and_env_come_from_the_same_values(
    delay_ms: int, drain_s: float, margin_s: float
) -> None:
    shutdown = {"delayMs": delay_ms, "drainGraceS": drain_s, "marginS": margin_s}
    objects = render({**STORES, "center": {"shutdown": shutdown}, "agents": {"regions": [{"name": "eu"}]}})
    deployment = center(objects)
    assert int(env_value(deployment, "QUOTA_CENTER_SHUTDOWN_DELAY_MS")) == delay_ms
    assert float(env_value(deployment, "QUOTA_CENTER_DRAIN_GRACE_S")) == drain_s
    expected = math.ceil(delay_ms / 1000 + drain_s + margin_s)
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] == expected
    # The agents keep their own (default) stop.
    assert pod_spec(statefulsets(objects)[0])["terminationGracePeriodSeconds"] == 20


def migrate_job(objects: list[Obj]) -> Obj:
    return named(objects, "Job", f"{RELEASE}-migrate")


def test_migrate_runs_as_a_pre_install_and_pre_upgrade_hook(objects: list[Obj]) -> None:
    job = migrate_job(objects)
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    assert int(annotations["helm.sh/hook-weight"]) >= 0
    main = container(job)
    assert [*main["command"], *main["args"]] == ["quota-center", "migrate"]
    assert main["image"] == container(center(objects))["image"]
    assert pod_spec(job)["restartPolicy"] == "Never"


def secret_ref(workload: Obj, name: str) -> Obj:
    sources = [var.source for var in env(workload) if var.name == name]
    assert len(sources) == 1, f"{name} set {len(sources)} times"
    assert sources[0] is not None, f"{name} is not from a Secret"
    ref: Obj = sources[0]["secretKeyRef"]
    return ref


def secret_value(objects: list[Obj], ref: Obj) -> str:
    secret = named(objects, "Secret", ref["name"])
    return base64.b64decode(secret["data"][ref["key"]]).decode()


def test_migrate_uses_the_centers_database(ci_values: Path, objects: list[Obj]) -> None:
    job_ref = secret_ref(migrate_job(objects), "QUOTA_CENTER_DATABASE_URL")
    center_ref = secret_ref(center(objects), "QUOTA_CENTER_DATABASE_URL")
    inline = values_file(ci_values).get("postgres", {}).get("url")
    if inline:
        # Its own hook Secret (the release's does not exist yet on a first install), same DSN.
        hook = named(objects, "Secret", job_ref["name"])
        assert "pre-install" in hook["metadata"]["annotations"]["helm.sh/hook"]
        assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            migrate_job(objects)["metadata"]["annotations"]["helm.sh/hook-weight"]
        )
        assert secret_value(objects, job_ref) == secret_value(objects, center_ref) == inline
    else:
        assert job_ref == center_ref


def test_migrate_can_be_turned_off() -> None:
    objects = render({**STORES, "migrate": {"enabled": False}})
    assert of_kind(objects, "Job") == []
    assert [s["metadata"]["name"] for s in of_kind(objects, "Secret")] == [f"{RELEASE}-urls"]


def test_center_service_has_named_grpc_and_metrics_ports(objects: list[Obj]) -> None:
    deployment = center(objects)
    service = named(objects, "Service", RELEASE)
    assert labels_match(service["spec"]["selector"], pod_labels(deployment))
    container_ports = {p["name"] for p in container(deployment)["ports"]}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert {"grpc", "metrics"} <= set(service_ports)
    for name, port in service_ports.items():
        assert port["targetPort"] == name
        assert name in container_ports


def test_center_has_two_replicas_and_a_disruption_budget() -> None:
    objects = render(STORES)
    deployment = center(objects)
    assert deployment["spec"]["replicas"] == 2
    budget = named(objects, "PodDisruptionBudget", RELEASE)
    assert budget["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budget["spec"]
    assert labels_match(budget["spec"]["selector"]["matchLabels"], pod_labels(deployment))


def test_center_tls_files_come_from_the_mounted_secret() -> None:
    objects = render_file(CHART / "ci" / TLS_VALUES)
    deployment = center(objects)
    mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    for setting in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "ACCESS_FILE"):
        path = env_value(deployment, f"QUOTA_CENTER_{setting}")
        owner = [name for name, mount in mounts.items() if path.startswith(mount + "/")]
        assert len(owner) == 1, f"{setting}={path} is on no mounted volume"
        assert "secret" in volumes[owner[0]] or "configMap" in volumes[owner[0]]
