"""The chart under test, rendered and linted by Helm's own code (helm-python-sdk: Helm 4 as a
library, no binary, no cluster), and the parts of its objects the tests look at."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm

from tests.deploy.untyped import load_documents

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "quota-center"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "quota-center"
NAMESPACE = "quota"

Obj = dict[str, Any]


def values_file(path: Path) -> Obj:
    """A values file as Helm reads it (``-f``)."""
    return helm.values_from_yaml(path.read_text(encoding="utf-8"))


def lint(values: Obj) -> list[str]:
    """``helm lint --strict`` findings of warning severity or worse (info is not a finding)."""
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + list(
        report["errors"]
    )


def render(values: Obj) -> list[Obj]:
    """Every object ``helm template`` would print for a first install, hooks included."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        obj
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for obj in load_documents(text)
    ]


@functools.cache
def _rendered_file(path: Path) -> list[Obj]:
    return render(values_file(path))


def render_file(path: Path) -> list[Obj]:
    """The objects of a ci/ values file (rendered once per session; each caller gets a copy)."""
    return copy.deepcopy(_rendered_file(path))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def center(objects: list[Obj]) -> Obj:
    """The center's Deployment."""
    return named(objects, "Deployment", RELEASE)


def statefulsets(objects: list[Obj]) -> list[Obj]:
    return of_kind(objects, "StatefulSet")


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Obj) -> Obj:
    """The workload's one container."""
    containers: list[Obj] = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']} has {len(containers)} containers"
    return containers[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    """Everything that makes pods."""
    return [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet")]


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None  # None: from valueFrom
    source: Obj | None


def env(workload: Obj) -> list[EnvVar]:
    return [EnvVar(e["name"], e.get("value"), e.get("valueFrom")) for e in container(workload).get("env", [])]


def env_value(workload: Obj, name: str) -> str:
    values = [var.value for var in env(workload) if var.name == name]
    assert len(values) == 1, f"{name} set {len(values)} times in {workload['metadata']['name']}"
    assert values[0] is not None, f"{name} is not a literal value"
    return values[0]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects an object with these labels."""
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def flatten(values: Obj, prefix: str = "") -> Iterator[str]:
    """Dotted paths of a values tree's leaves; an empty map or any list is a leaf."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, path + ".")
        else:
            yield path
