"""An agent's lease ends with the budget's validity window (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from quota_center.agents.holdings import lease_for
from quota_center.budgets.registry import BudgetMeta
from quota_rules.policy import Policy, resolve

POLICY = resolve(Policy(), total=1_000)
END = datetime(2026, 1, 1, tzinfo=UTC)
END_MS = int(END.timestamp() * 1000)


def _meta(valid_until: datetime | None) -> BudgetMeta:
    return BudgetMeta("b", "u", POLICY, 4, None, valid_until, gen=1)


def test_no_window_gives_the_whole_lease() -> None:
    assert lease_for(_meta(None), END_MS, 300_000) == 300_000


def test_the_lease_is_cut_at_the_end_of_the_window() -> None:
    assert lease_for(_meta(END), END_MS - 300_000, 300_000) == 300_000
    assert lease_for(_meta(END), END_MS - 1_000, 300_000) == 1_000
    assert lease_for(_meta(END), END_MS, 300_000) == 0
    assert lease_for(_meta(END), END_MS + 5_000, 300_000) == 0
