"""The NetworkPolicies: the center admits its agents and the listed clients, metrics only Prometheus."""

from __future__ import annotations

from tests.deploy.chart import (
    RELEASE,
    Obj,
    center,
    container,
    labels_match,
    named,
    pod_labels,
    render,
    statefulsets,
)

STORES = {"redis": {"url": "redis://redis:6379/0"}, "postgres": {"url": "postgresql://quota@postgres/quota"}}
ADMINS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "quota-admin"}}}]


def center_policy(objects: list[Obj]) -> Obj:
    return named(objects, "NetworkPolicy", RELEASE)


def rules_for_port(policy: Obj, port: str) -> list[Obj]:
    return [rule for rule in policy["spec"]["ingress"] if port in {p["port"] for p in rule.get("ports", [])}]


def peers_for_port(policy: Obj, port: str) -> list[Obj]:
    return [peer for rule in rules_for_port(policy, port) for peer in rule["from"]]


def admits_pod(peers: list[Obj], labels: dict[str, str]) -> bool:
    """Whether a peer list admits pods with these labels from the policy's own namespace."""
    return any(
        "namespaceSelector" not in peer and labels_match(peer["podSelector"].get("matchLabels", {}), labels)
        for peer in peers
        if "podSelector" in peer
    )


def test_center_policy_selects_the_center_pods_only(objects: list[Obj]) -> None:
    policy = center_policy(objects)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert labels_match(selector, pod_labels(center(objects)))
    for agents in statefulsets(objects):
        assert not labels_match(selector, pod_labels(agents))
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_center_grpc_admits_the_agents(objects: list[Obj]) -> None:
    peers = peers_for_port(center_policy(objects), "grpc")
    for agents in statefulsets(objects):
        assert admits_pod(peers, pod_labels(agents)), agents["metadata"]["name"]


def test_center_grpc_admits_nobody_else_by_default() -> None:
    objects = render({**STORES, "agents": {"regions": [{"name": "eu"}]}})
    peers = peers_for_port(center_policy(objects), "grpc")
    assert len(peers) == 1
    assert not admits_pod(peers, {"app.kubernetes.io/name": "something-else"})


def test_center_grpc_admits_the_listed_clients() -> None:
    objects = render({**STORES, "networkPolicy": {"centerClients": ADMINS}})
    assert all(peer in peers_for_port(center_policy(objects), "grpc") for peer in ADMINS)


def test_metrics_ports_admit_prometheus_only(objects: list[Obj]) -> None:
    policies = [center_policy(objects)] + (
        [named(objects, "NetworkPolicy", f"{RELEASE}-agents")] if statefulsets(objects) else []
    )
    for policy in policies:
        [rule] = rules_for_port(policy, "metrics")
        assert rule["from"], "an empty from admits everyone"
        assert not admits_pod(rule["from"], pod_labels(center(objects)))
        assert [p["port"] for p in rule["ports"]] == ["metrics"]


def test_no_rule_admits_everyone(objects: list[Obj]) -> None:
    # An ingress rule without "from", or with an empty one, admits every source.
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule admits everyone"


def test_policy_ports_are_container_ports(objects: list[Obj]) -> None:
    # Named ports: a name the container does not have would silently match nothing.
    policy = center_policy(objects)
    names = {p["name"] for p in container(center(objects))["ports"]}
    for rule in policy["spec"]["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= names


def test_agents_policy_selects_every_agent_and_no_center() -> None:
    objects = render({**STORES, "agents": {"regions": [{"name": "eu"}, {"name": "us"}]}})
    policy = named(objects, "NetworkPolicy", f"{RELEASE}-agents")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(labels_match(selector, pod_labels(agents)) for agents in statefulsets(objects))
    assert not labels_match(selector, pod_labels(center(objects)))
    # The default: the agents' callers are the namespace's pods.
    assert peers_for_port(policy, "grpc") == [{"podSelector": {}}]
