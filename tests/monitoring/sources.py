"""The monitoring files under test, read once: the rules, their unit tests, the dashboards, the
runbooks, and the PromQL each of them holds."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

# PyYAML comes with the project's `chart` extra (kubernetes-validate), without type stubs.
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules" / "quota.rules.yml"
RULE_TESTS = ROOT / "monitoring" / "rules" / "quota.rules.test.yml"
DASHBOARDS = ROOT / "monitoring" / "dashboards"
RUNBOOKS = ROOT / "docs" / "runbooks"

Json = dict[str, Any]
# Fenced blocks, also those indented inside a list item.
_FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.cache
def rules() -> tuple[Json, ...]:
    return tuple(rule for group in load_yaml(RULES)["groups"] for rule in group["rules"])


def alerts() -> tuple[Json, ...]:
    return tuple(r for r in rules() if "alert" in r)


def recordings() -> tuple[Json, ...]:
    return tuple(r for r in rules() if "record" in r)


@functools.cache
def rule_tests() -> Json:
    loaded: Json = load_yaml(RULE_TESTS)
    return loaded


@functools.cache
def dashboards() -> dict[str, Json]:
    """File name -> the parsed dashboard."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Json) -> list[Json]:
    """Every panel, rows' nested panels included."""
    out: list[Json] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel query and template-variable query."""
    out: list[tuple[str, str]] = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            out += [(f"{name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                out.append((f"{name}: ${variable['name']}", variable["definition"]))
    return out


def runbook_names() -> set[str]:
    return {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}


def runbook(name: str) -> str:
    return (RUNBOOKS / f"{name}.md").read_text(encoding="utf-8")


def fenced(markdown: str, language: str) -> list[str]:
    """The contents of the ```language blocks of ``markdown``."""
    return [body for lang, body in _FENCE.findall(markdown) if lang == language]


def runbook_exprs() -> list[tuple[str, str]]:
    """(runbook, PromQL) of every ```promql block of every runbook."""
    return [
        (name, block.strip()) for name in sorted(runbook_names()) for block in fenced(runbook(name), "promql")
    ]
