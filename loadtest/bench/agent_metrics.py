"""What the servers' Prometheus text says: center calls per thousand deductions and the agent's
slice (the agent's), Deduct calls answered (the center's)."""

from __future__ import annotations

import urllib.request
from typing import Any


def scrape(url: str) -> dict[str, float]:
    """Center calls and deductions so far, from the agent's Prometheus text."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    sums = {"forwarded": 0.0, "refills": 0.0, "served": 0.0}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels, _, value = rest.rpartition("} ")
        if name == "quota_region_agent_forwarded_total":
            sums["forwarded"] += float(value)
            reason = labels.partition('reason="')[2].partition('"')[0]
            sums[f"forwarded:{reason}"] = sums.get(f"forwarded:{reason}", 0.0) + float(value)
        elif name == "quota_region_agent_refills_total":
            sums["refills"] += float(value)
        elif name == "quota_region_agent_served_total" and (
            'method="Deduct"' in labels or 'method="DeductBatch"' in labels
        ):
            sums["served"] += float(value)
    return sums


def center_deducts(url: str) -> float:
    """Deduct and DeductBatch calls the center answered so far, from its Prometheus text."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("quota_requests_total{") and (
            'method="Deduct"' in line or 'method="DeductBatch"' in line
        ):
            total += float(line.rpartition(" ")[2])
    return total


# The center's counters that say where a sale's center work went (``cost``).
_CENTER_COSTS = (
    "quota_transfers_total",
    "quota_agent_reclaims_total",
    "quota_shared_refusals_total",
    "quota_sold_out_refusals_total",
    "quota_sold_out_changes_total",
    "quota_end_game_pools_opened_total",
    "quota_deduct_waits_total",
)


def cost(center_url: str, agent_urls: list[str]) -> dict[str, float]:
    """The counters of the center's work, by name and labels, and the agents' forwards by reason
    (summed over the agents): subtract two of these for what happened in between."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(center_url, timeout=5) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        name = line.partition("{")[0].partition(" ")[0]
        if name in _CENTER_COSTS and 'outcome="aborted"' not in line:
            key, _, value = line.rpartition(" ")
            out[key] = out.get(key, 0.0) + float(value)
    for url in agent_urls:
        for key, value in scrape(url).items():
            if key.startswith("forwarded:") or key == "refills":
                out[f"agent {key}"] = out.get(f"agent {key}", 0.0) + value
    return out


def slice_available(url: str, budget_id: str) -> float:
    """``quota_region_agent_slice_available`` of one budget (0 when the agent does not hold it)."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    wanted = f'quota_region_agent_slice_available{{budget="{budget_id}"}} '
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted) :])
    return 0.0


def per_thousand(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    center = (after["forwarded"] - before["forwarded"]) + (after["refills"] - before["refills"])
    served = after["served"] - before["served"]
    reasons = {
        k.partition(":")[2]: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith("forwarded:") and after[k] > before.get(k, 0.0)
    }
    return {
        "center_calls": center,
        "forwarded": after["forwarded"] - before["forwarded"],
        "forwarded_by_reason": reasons,
        "refills": after["refills"] - before["refills"],
        "deductions": served,
        "per_thousand": center * 1000 / served if served > 0 else None,
    }


def calls_per_thousand(
    windows: list[tuple[str, dict[str, float], dict[str, float]]],
    first: dict[str, float],
    last: dict[str, float],
) -> dict[str, Any]:
    zero: dict[str, float] = {"forwarded": 0.0, "refills": 0.0, "served": 0.0}
    summed = dict(zero)
    phases = {}
    for name, before, after in windows:
        phases[name] = per_thousand(before, after)
        for k in after:
            summed[k] = summed.get(k, 0.0) + after[k] - before.get(k, 0.0)
    steady = per_thousand(zero, summed)
    return {
        "per_thousand": steady["per_thousand"],
        "windows": steady,
        "whole_run": per_thousand(first, last),
        "phases": phases,
    }
