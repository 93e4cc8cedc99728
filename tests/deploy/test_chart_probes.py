"""Every probe is a native gRPC probe on the container's health port: plaintext, the health service
alone, the same with TLS on the other listeners or not (the kubelet's gRPC probe speaks no TLS).
The health port is for the kubelet only: no Service carries it and no NetworkPolicy rule admits it."""

from __future__ import annotations

import helm_python as helm
import pytest

from tests.deploy.chart import (
    RELEASE,
    Obj,
    center,
    env_value,
    of_kind,
    pod_spec,
    render,
    statefulsets,
    workloads,
)

STORES = {"redis": {"url": "redis://redis:6379/0"}, "postgres": {"url": "postgresql://quota@postgres/quota"}}
EU = {"regions": [{"name": "eu"}]}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# Container name -> the probes it must have (a probe that disappears fails the test).
EXPECTED_PROBES = {
    "quota-center": {"startupProbe", "livenessProbe", "readinessProbe"},
    "region-agent": {"livenessProbe", "readinessProbe"},
    "migrate": set(),  # a Job's container: it runs to completion, nothing to probe
}
# The health service name each probe asks for.
SERVICE_NAMES = {"startupProbe": "liveness", "livenessProbe": "liveness", "readinessProbe": "readiness"}
# Container name -> the variable that opens its health port.
HEALTH_PORT_SETTINGS = {
    "quota-center": "QUOTA_CENTER_HEALTH_PORT",
    "region-agent": "REGION_AGENT_HEALTH_PORT",
}
HANDLERS = ("grpc", "tcpSocket", "httpGet", "exec")


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    found: list[Obj] = spec["containers"] + spec.get("initContainers", [])
    return found


def health_port(workload: Obj, spec: Obj) -> int:
    """The number of the container port named health, checked against the variable that opens it."""
    ports = [p for p in spec.get("ports", []) if p["name"] == "health"]
    assert len(ports) == 1, f"{spec['name']}: {len(ports)} container ports named health"
    number: int = ports[0]["containerPort"]
    assert ports[0].get("protocol", "TCP") == "TCP"
    assert int(env_value(workload, HEALTH_PORT_SETTINGS[spec["name"]])) == number
    others = [p["containerPort"] for p in spec["ports"] if p["name"] != "health"]
    assert number not in others, f"{spec['name']}: the health port shares its number"
    return number


def check_probes(workload: Obj) -> dict[str, Obj]:
    """Every probe of every container of the workload: present as expected, a gRPC probe on the
    container's health port asking for the right name. Returns the probes, by container and kind."""
    found: dict[str, Obj] = {}
    for spec in containers(workload):
        name = spec["name"]
        where = f"{workload['metadata']['name']}/{name}"
        present = {kind for kind in PROBES if kind in spec}
        assert present == EXPECTED_PROBES[name], f"{where}: probes {sorted(present)}"
        if not present:
            assert "health" not in {p["name"] for p in spec.get("ports", [])}, where
            continue
        port = health_port(workload, spec)
        for kind in sorted(present):
            probe = spec[kind]
            assert [h for h in HANDLERS if h in probe] == ["grpc"], f"{where}: {kind} is not a gRPC probe"
            assert probe["grpc"] == {"port": port, "service": SERVICE_NAMES[kind]}, f"{where}: {kind}"
            found[f"{name}.{kind}"] = probe
    return found


def test_every_probe_is_grpc_on_the_health_port(objects: list[Obj]) -> None:
    checked = set()
    for workload in workloads(objects):
        checked |= set(check_probes(workload))
    # Both processes were there to check, with every probe each must have.
    assert checked == {f"{name}.{kind}" for name, kinds in EXPECTED_PROBES.items() for kind in kinds}


def test_health_ports_are_the_values_defaults(objects: list[Obj]) -> None:
    # Both ci files leave them at their defaults (values.yaml, the Dockerfile's EXPOSE).
    assert env_value(center(objects), "QUOTA_CENTER_HEALTH_PORT") == "50052"
    for agents in statefulsets(objects):
        assert env_value(agents, "REGION_AGENT_HEALTH_PORT") == "50062"


def tls_values() -> Obj:
    return {
        **STORES,
        "center": {"tls": {"enabled": True, "secretName": "center-tls", "tokenPort": 50053}},
        "agents": {
            **EU,
            "tls": {"enabled": True, "secretName": "agent-tls"},
            "centerTLS": {"secretName": "agent-center-tls"},
        },
    }


def test_probes_are_the_same_with_tls_and_without() -> None:
    plain = render({**STORES, "agents": EU})
    tls = render(tls_values())
    # The TLS render does turn TLS on (otherwise this would compare two plaintext renders).
    assert env_value(center(tls), "QUOTA_CENTER_TLS_CERT_FILE")
    assert env_value(statefulsets(tls)[0], "REGION_AGENT_TLS_CERT_FILE")
    for pick in (center, lambda objects: statefulsets(objects)[0]):
        assert check_probes(pick(tls)) == check_probes(pick(plain))


def test_health_ports_come_from_the_values() -> None:
    objects = render({**STORES, "center": {"healthPort": 8086}, "agents": {**EU, "healthPort": 8087}})
    check_probes(center(objects))
    check_probes(statefulsets(objects)[0])
    assert env_value(center(objects), "QUOTA_CENTER_HEALTH_PORT") == "8086"
    assert env_value(statefulsets(objects)[0], "REGION_AGENT_HEALTH_PORT") == "8087"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"center": {"healthPort": 50051}}, r"center\.grpcPort and center\.healthPort"),
        ({"center": {"healthPort": 9464}}, r"center\.healthPort and center\.metricsPort"),
        (
            {"center": {"tls": {"enabled": True, "secretName": "t", "tokenPort": 50052}}},
            r"center\.healthPort and center\.tls\.tokenPort",
        ),
        ({"agents": {**EU, "healthPort": 50061}}, r"agents\.grpcPort and agents\.healthPort"),
        ({"agents": {**EU, "healthPort": 9465}}, r"agents\.healthPort and agents\.metricsPort"),
    ],
)
def test_a_health_port_shared_with_another_listener_is_refused(values: Obj, message: str) -> None:
    # The process would fail to bind the second listener and never start.
    with pytest.raises(helm.HelmRenderError, match=message):
        render({**STORES, **values})


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_the_health_port_cannot_be_turned_off(port: int) -> None:
    # -1 (no health port) or 0 (a free port) would leave the probes nothing to ask.
    for values in ({"center": {"healthPort": port}}, {"agents": {**EU, "healthPort": port}}):
        with pytest.raises(helm.HelmValuesError, match="healthPort"):
            render({**STORES, **values})


@pytest.mark.parametrize(
    "values",
    [
        {"center": {"extraSettings": {"QUOTA_CENTER_HEALTH_PORT": "1"}}},
        {"agents": {**EU, "extraSettings": {"REGION_AGENT_HEALTH_PORT": "1"}}},
        {"agents": {"regions": [{"name": "eu", "extraSettings": {"REGION_AGENT_HEALTH_PORT": "1"}}]}},
    ],
)
def test_extra_settings_cannot_move_the_health_port(values: Obj) -> None:
    # Set twice, the kubelet would pick one: the probes could then ask a port nobody listens on.
    with pytest.raises(helm.HelmRenderError, match="set by the chart"):
        render({**STORES, **values})


def health_ports(objects: list[Obj]) -> set[int | str]:
    """The health port's name and every number it has in these objects."""
    numbers: set[int | str] = {"health"}
    for workload in workloads(objects):
        for spec in containers(workload):
            numbers |= {p["containerPort"] for p in spec.get("ports", []) if p["name"] == "health"}
    return numbers


def test_health_port_is_in_no_service(objects: list[Obj]) -> None:
    health = health_ports(objects)
    assert len(health) == 3  # the name, the center's number and the agents'
    for service in of_kind(objects, "Service"):
        for port in service["spec"]["ports"]:
            where = f"Service {service['metadata']['name']}: {port['name']}"
            assert port["name"] not in health, where
            assert port.get("targetPort", port["port"]) not in health, where


def test_no_network_policy_rule_admits_the_health_port(objects: list[Obj]) -> None:
    health = health_ports(objects)
    policies = of_kind(objects, "NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {RELEASE, f"{RELEASE}-agents"}
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            # A rule without ports admits every port, the health port among them.
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule admits every port"
            for port in rule["ports"]:
                assert port.get("port") is not None, f"{policy['metadata']['name']}: a rule admits every port"
                assert port["port"] not in health, f"{policy['metadata']['name']} admits {port['port']}"
                assert "endPort" not in port, f"{policy['metadata']['name']}: a port range"
