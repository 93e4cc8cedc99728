"""The center's per-budget series: only budgets it looks after, the most active by name, the rest
added up, a closed one gone at once and not brought back by an active set read before it closed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from quota_center.budget_series import BudgetSeries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scrape(series: BudgetSeries) -> str:
    registry = CollectorRegistry()
    registry.register(series)
    return generate_latest(registry).decode()


def _see(series: BudgetSeries, budget_id: str, consumed: int, balanced: bool = True) -> None:
    series.observe(
        budget_id, total=1000, remaining=1000 - consumed, consumed=consumed, in_doubt=0, balanced=balanced
    )


def test_only_tracked_budgets_and_the_most_active_by_name() -> None:
    clock = Clock()
    series = BudgetSeries(limit=1, clock=clock)
    _see(series, "audited-once", 5)  # an operator's audit of a budget not looked after
    series.track(["a", "b"])
    _see(series, "a", 0)
    _see(series, "b", 0)
    clock.now += 10
    _see(series, "a", 10)
    _see(series, "b", 400)
    text = _scrape(series)
    assert 'quota_budget_consumed{budget="b"} 400.0' in text
    assert 'quota_budget_consumed{budget="a"}' not in text
    assert 'quota_budget_consumed{budget="_other"} 10.0' in text
    assert 'quota_budget_size{budget="_other"} 1000.0' in text
    assert "audited-once" not in text
    assert "quota_budgets_tracked 2.0" in text
    # A pause does not flip the choice: b consumed most lately.
    clock.now += 30
    _see(series, "a", 12)
    _see(series, "b", 400)
    assert 'quota_budget_consumed{budget="b"} 400.0' in _scrape(series)


def test_a_closed_budget_goes_at_once_and_stays_gone() -> None:
    clock = Clock()
    series = BudgetSeries(limit=10, clock=clock)
    series.track(["a", "b"])
    _see(series, "a", 1, balanced=False)
    _see(series, "b", 1)
    series.observe_mode("a", "scarce")
    assert 'quota_budget_mode{budget="a",mode="scarce"} 1.0' in _scrape(series)
    assert "quota_audit_unbalanced_budgets 1.0" in _scrape(series)
    series.forget("a")
    series.track(["a", "b"])  # an active set read before the close
    _see(series, "a", 2)
    series.observe_mode("a", "normal")
    text = _scrape(series)
    assert 'budget="a"' not in text
    assert "quota_audit_unbalanced_budgets 0.0" in text
    series.track([])  # b left the active set
    assert 'budget="b"' not in _scrape(series)
