"""The region agents: a StatefulSet per region, ids from pod names, journals on their own volumes."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.chart import (
    NAMESPACE,
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
    statefulsets,
    values_file,
)


def regions_of(ci_values: Path) -> list[Obj]:
    regions: list[Obj] = values_file(ci_values).get("agents", {}).get("regions", [])
    return regions


def test_every_ci_file_has_agents(ci_values: Path) -> None:
    # Otherwise the agents' tests below would check nothing for it.
    assert regions_of(ci_values)


def test_one_statefulset_per_region(ci_values: Path, objects: list[Obj]) -> None:
    regions = regions_of(ci_values)
    sets = {s["metadata"]["name"]: s for s in statefulsets(objects)}
    assert set(sets) == {f"{RELEASE}-agent-{r['name']}" for r in regions}
    for region in regions:
        agents = sets[f"{RELEASE}-agent-{region['name']}"]
        assert agents["spec"]["replicas"] == region.get("replicas", 1)
        assert env_value(agents, "REGION_AGENT_REGION") == region["name"]
        assert [*container(agents)["command"], *container(agents)["args"]] == ["region-agent", "serve"]


def test_agent_id_is_the_pod_name(objects: list[Obj]) -> None:
    # Stable across restarts, one journal per name: what the agent requires of its id.
    for agents in statefulsets(objects):
        [agent_id] = [var for var in env(agents) if var.name == "REGION_AGENT_AGENT_ID"]
        assert agent_id.value is None
        assert agent_id.source == {"fieldRef": {"fieldPath": "metadata.name"}}
        # First, so that $(REGION_AGENT_AGENT_ID) in later variables expands.
        assert env(agents)[0].name == "REGION_AGENT_AGENT_ID"


def test_journal_is_on_a_volume_claim_of_each_pod(objects: list[Obj]) -> None:
    for agents in statefulsets(objects):
        claims = {t["metadata"]["name"]: t for t in agents["spec"].get("volumeClaimTemplates", [])}
        journal = env_value(agents, "REGION_AGENT_JOURNAL_PATH")
        mounts = [
            m
            for m in container(agents)["volumeMounts"]
            if journal.startswith(m["mountPath"].rstrip("/") + "/")
        ]
        assert len(mounts) == 1, f"{journal} is on {len(mounts)} mounts"
        assert mounts[0]["name"] in claims, f"{journal} is not on a volumeClaimTemplates volume"
        assert not mounts[0].get("readOnly", False)
        # A pod volume of the same name would shadow the claim (an emptyDir loses the journal).
        assert mounts[0]["name"] not in {v["name"] for v in pod_spec(agents).get("volumes", [])}
        claim = claims[mounts[0]["name"]]["spec"]
        assert claim["resources"]["requests"]["storage"]
        assert agents["spec"]["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }


def test_agents_dial_the_center_service(objects: list[Obj]) -> None:
    service = named(objects, "Service", RELEASE)
    grpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    expected = f"{RELEASE}.{NAMESPACE}.svc.cluster.local:{grpc}"
    assert labels_match(service["spec"]["selector"], pod_labels(center(objects)))
    for agents in statefulsets(objects):
        assert env_value(agents, "REGION_AGENT_CENTER_TARGET") == expected


def test_each_region_has_a_headless_and_a_client_service(objects: list[Obj]) -> None:
    for agents in statefulsets(objects):
        name = agents["metadata"]["name"]
        headless = named(objects, "Service", agents["spec"]["serviceName"])
        client = named(objects, "Service", name)
        assert headless["spec"]["clusterIP"] == "None"
        assert client["spec"].get("clusterIP") != "None"
        for service in (headless, client):
            assert service["spec"]["selector"] == agents["spec"]["selector"]["matchLabels"]
            assert labels_match(service["spec"]["selector"], pod_labels(agents))
            assert "grpc" in {p["name"] for p in service["spec"]["ports"]}


def test_regions_do_not_select_each_others_pods(objects: list[Obj]) -> None:
    sets = statefulsets(objects)
    for agents in sets:
        for other in sets:
            if other is not agents:
                assert not labels_match(agents["spec"]["selector"]["matchLabels"], pod_labels(other))


def test_agent_certificate_for_the_center_is_its_own(objects: list[Obj]) -> None:
    # The center accepts a session only under the id the certificate names: one pair per pod.
    for agents in statefulsets(objects):
        names = {var.name for var in env(agents)}
        if "REGION_AGENT_CENTER_CERT_FILE" not in names:
            continue
        assert env_value(agents, "REGION_AGENT_CENTER_CERT_FILE").endswith("/$(REGION_AGENT_AGENT_ID).crt")
        assert env_value(agents, "REGION_AGENT_CENTER_KEY_FILE").endswith("/$(REGION_AGENT_AGENT_ID).key")


def test_each_region_has_a_disruption_budget(objects: list[Obj]) -> None:
    budgets = {b["metadata"]["name"]: b for b in of_kind(objects, "PodDisruptionBudget")}
    for agents in statefulsets(objects):
        budget = budgets[agents["metadata"]["name"]]
        assert labels_match(budget["spec"]["selector"]["matchLabels"], pod_labels(agents))
