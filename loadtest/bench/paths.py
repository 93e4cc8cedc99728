"""What is measured against what: each path, the ceiling it is compared with, and the targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest.bench.client import DEDUCT, DEDUCT_BATCH

AGENT, CENTER, ECHO, EVALSHA = "agent", "center", "echo", "evalsha"


@dataclass(frozen=True, slots=True)
class PathSpec:
    key: str
    label: str
    server: str  # AGENT, CENTER, ECHO or EVALSHA
    method: str
    ceiling: str | None  # key of the path this one is compared with
    target_ratio: float | None = None


def path_specs(batch: int) -> list[PathSpec]:
    b = f"DeductBatch×{batch}"
    return [
        PathSpec("echo.deduct", "echo Deduct", ECHO, DEDUCT, None),
        PathSpec("evalsha.deduct", "echo+EVALSHA Deduct", EVALSHA, DEDUCT, "echo.deduct"),
        PathSpec("agent.deduct", "agent Deduct", AGENT, DEDUCT, "echo.deduct", 0.85),
        PathSpec("center.deduct", "center Deduct", CENTER, DEDUCT, "evalsha.deduct", 0.7),
        PathSpec("echo.batch", f"echo {b}", ECHO, DEDUCT_BATCH, None),
        PathSpec("evalsha.batch", f"echo+EVALSHA {b}", EVALSHA, DEDUCT_BATCH, "echo.batch"),
        PathSpec("agent.batch", f"agent {b}", AGENT, DEDUCT_BATCH, "echo.batch", 0.6),
        PathSpec("center.batch", f"center {b}", CENTER, DEDUCT_BATCH, "evalsha.batch"),
    ]


CALLS_PER_THOUSAND_LIMIT = 10.0


def targets(specs: list[PathSpec], paths: dict[str, Any], cpt: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        if spec.target_ratio is None or spec.ceiling is None:
            continue
        p = paths[spec.key]
        out.append(
            {
                "name": f"{spec.label} ≥ {spec.target_ratio:g} × {paths[spec.ceiling]['label']}",
                "value": p["ratio"],
                "limit": spec.target_ratio,
                "met": p["met"],
                "deductions_per_s": p["closed"]["deductions_per_s"],
            }
        )
    value = cpt["per_thousand"]
    out.append(
        {
            "name": f"center calls per 1000 agent deductions ≤ {CALLS_PER_THOUSAND_LIMIT:g}",
            "value": value,
            "limit": CALLS_PER_THOUSAND_LIMIT,
            "met": None if value is None else value <= CALLS_PER_THOUSAND_LIMIT,
        }
    )
    return out
