"""Small builders shared by the agent's tests."""

from __future__ import annotations

from dataclasses import replace

from region_agent.slices import Counters, Holding, Mode, State

LEASE_MS = 60_000


def holding(
    budget_id: str = "b1",
    *,
    version: int = 1,
    balance: int = 100,
    applied: Counters | None = None,
    lease_ms: int = LEASE_MS,
    mode: Mode = Mode.NORMAL,
    state: State = State.ACTIVE,
    lost: bool = False,
) -> Holding:
    return Holding(budget_id, version, balance, applied or Counters(), lease_ms, mode, state, lost)


def counters(c: Counters, **changes: int) -> Counters:
    return replace(c, **changes)
