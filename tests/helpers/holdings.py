"""Small builders shared by the agent's tests."""

from __future__ import annotations

from dataclasses import replace

from quota_rules.modes import Mode
from quota_rules.usage import Usage
from region_agent.core.slices import Holding, State

LEASE_MS = 60_000


def holding(
    budget_id: str = "b1",
    *,
    version: int = 1,
    balance: int = 100,
    applied: Usage | None = None,
    lease_ms: int = LEASE_MS,
    mode: Mode = Mode.NORMAL,
    state: State = State.ACTIVE,
    lost: bool = False,
) -> Holding:
    return Holding(budget_id, version, balance, applied or Usage(), lease_ms, mode, state, lost)


def counters(c: Usage, **changes: int) -> Usage:
    return replace(c, **changes)
