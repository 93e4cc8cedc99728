"""Every pod runs non-root on a read-only root filesystem, and every variable it gets is a setting."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import pytest

from quota_center import settings as center_settings
from quota_rules.env import SettingsError
from region_agent import settings as agent_settings
from tests.deploy.chart import Obj, container, env, pod_spec, workloads


@dataclass(frozen=True)
class Process:
    """What a container runs, as far as its environment goes: the variables it reads, and the
    function that reads them (and refuses values of the wrong type)."""

    names: frozenset[str]
    load: Callable[[Mapping[str, str]], object]


def process(prefix: str, settings: type, load: Callable[[Mapping[str, str]], object]) -> Process:
    return Process(frozenset(prefix + f.name.upper() for f in fields(settings)), load)


CENTER = process(center_settings.PREFIX, center_settings.Settings, center_settings.load)
AGENT = process(agent_settings.PREFIX, agent_settings.Settings, agent_settings.load)
# Container name -> the process in it.
PROCESSES = {"quota-center": CENTER, "migrate": CENTER, "region-agent": AGENT}
# The image's user (USER in the Dockerfile; test_dockerfile.py holds the two together).
UID = 10001


def test_every_pod_runs_as_the_images_non_root_user(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        pod = pod_spec(workload)["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] == UID
        assert pod["runAsGroup"] == UID
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod_spec(workload)["automountServiceAccountToken"] is False
        # Service links would add variables such as QUOTA_CENTER_GRPC_PORT=tcp://... for a
        # Service named quota-center-grpc: under the settings' prefix.
        assert pod_spec(workload)["enableServiceLinks"] is False


def test_every_container_is_locked_down(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        for spec in pod_spec(workload)["containers"] + pod_spec(workload).get("initContainers", []):
            context = spec["securityContext"]
            assert context["runAsNonRoot"] is True, spec["name"]
            assert context["runAsUser"] != 0, spec["name"]
            assert context["readOnlyRootFilesystem"] is True, spec["name"]
            assert context["allowPrivilegeEscalation"] is False, spec["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, spec["name"]
            assert context.get("privileged", False) is False, spec["name"]


def test_only_tmp_and_the_journal_are_writable(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for mount in container(workload)["volumeMounts"]:
            if mount.get("readOnly"):
                continue
            if mount["name"] in claims:
                continue
            assert mount["mountPath"] == "/tmp", f"{mount['mountPath']} is writable"
            assert "emptyDir" in volumes[mount["name"]]
        assert "/tmp" in {m["mountPath"] for m in container(workload)["volumeMounts"]}


def expand(value: str, known: dict[str, str]) -> str:
    """$(VAR) as the kubelet expands it, from the variables defined before."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: known.get(m.group(1), m.group(0)), value)


def stand_in(var_source: Obj, workload: Obj) -> str:
    """A value for a variable the kubelet fills in: the pod name, or a Secret's URL."""
    if "fieldRef" in var_source:
        assert var_source["fieldRef"]["fieldPath"] == "metadata.name"
        return f"{workload['metadata']['name']}-0"
    assert "secretKeyRef" in var_source
    return "redis://stand-in:6379/0"


def test_every_variable_is_a_setting_of_the_process(objects: list[Obj]) -> None:
    seen = set()
    for workload in workloads(objects):
        name = container(workload)["name"]
        running = PROCESSES[name]
        given: dict[str, str] = {}
        for var in env(workload):
            assert var.name in running.names, f"{name}: {var.name} is not a setting"
            assert var.name not in given, f"{name}: {var.name} set twice"
            raw = var.value if var.value is not None else stand_in(var.source or {}, workload)
            given[var.name] = expand(raw, given)
        seen.add(name)
        # The values parse as the settings' types (an integer printed 2e+06 would not).
        try:
            running.load(given)
        except SettingsError as exc:
            pytest.fail(f"{workload['metadata']['name']}: {exc}")
    assert {"quota-center", "migrate", "region-agent"} <= seen


def test_the_settings_are_read_from_the_modules() -> None:
    assert "QUOTA_CENTER_SHUTDOWN_DELAY_MS" in CENTER.names
    assert "REGION_AGENT_AGENT_ID" in AGENT.names
    assert "QUOTA_CENTER_HEALTH_PORT" in CENTER.names
    assert "REGION_AGENT_HEALTH_PORT" in AGENT.names
    assert "QUOTA_CENTER_AGENT_ID" not in CENTER.names
    with pytest.raises(SettingsError, match="2e"):
        AGENT.load({"REGION_AGENT_AGENT_ID": "a", "REGION_AGENT_RECORD_CAPACITY": "2e+06"})
