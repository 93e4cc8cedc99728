"""The packages' dependency rules, checked on every import statement (function-level ones too).

The agent and the center share rules (``quota_rules``), never each other's internals; ``quotactl``
needs the contract and the limits it checks input against (``quota_rules``, which does no I/O); the
shared rules need no server library. See docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {
    "quota",
    "quota_rules",
    "quota_center",
    "quotactl",
    "region_agent",
    "loadtest",
    "devstack",
    "tests",
}

# package -> the project packages it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "quota_rules": {"quota"},
    "quota_center": {"quota", "quota_rules"},
    "region_agent": {"quota", "quota_rules"},
    "quotactl": {"quota", "quota_rules"},
    "devstack": {"quota"},
    "loadtest": {"quota", "quota_rules", "quota_center", "region_agent", "quotactl", "devstack"},
}
# Third-party libraries a package must not need: the shared rules do no I/O.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "quota_rules": {"redis", "asyncpg", "prometheus_client"},
    "quotactl": {"redis", "asyncpg"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    forbidden = FORBIDDEN_LIBRARIES.get(package, set())
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_packages(path)):
            if (name in PROJECT and name not in allowed) or name in forbidden:
                out.append(f"{path.relative_to(ROOT)} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(p for p in ALLOWED if (ROOT / p).is_dir()))
def test_package_imports_only_what_it_may(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from quota_center.spending import deductions\n    import redis.asyncio\n")
    assert imported_packages(bad) == {"quota_center", "redis"}
