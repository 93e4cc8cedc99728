"""The deterministic simulation at small size: many agents, skewed demand larger than the budget.

It must drain the budget to exactly zero with no false refusal, and while the budget is
plentiful the agents must need the center rarely: a slice covers about two seconds of an
agent's demand and is refilled below a quarter, so an agent asks about once per 1.5 s of its
own traffic; with amounts of 5 on average that is well under 25 calls per 1000 deductions for
agents drawing 100 deductions a second.
"""

from __future__ import annotations

import pytest

from loadtest.simulate import STRATEGIES, main, run


def test_agents_drain_the_budget_exactly_with_few_center_calls() -> None:
    r = run(agents=40, seconds=8, rate=4_000, seed=7)
    print("\n" + r.table())
    assert r.false_refusals == 0
    assert r.leftover == 0
    assert r.drained_at_s > 0
    assert r.refused > 0  # demand exceeded the budget: the end was reached
    assert r.local > 0.5 * r.deductions
    assert r.steady_per_thousand() < 25


def test_the_same_seed_gives_the_same_run() -> None:
    a, b = run(agents=10, seconds=3, rate=1_000, seed=3), run(agents=10, seconds=3, rate=1_000, seed=3)
    assert a.table() == b.table()
    assert a.deductions > 0


def test_the_command_refuses_nonsense_and_runs() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--agents", "0"])
    assert exc.value.code == 2
    assert main(["--agents", "5", "--seconds", "2", "--rate", "500"]) == 0


def test_the_strategies_compare_as_designed() -> None:
    """Static strands budget and refuses falsely, local oversells, central asks the center for
    every deduction; progressive does none of these and needs the center far less than central."""
    runs = {s: run(agents=20, seconds=5, rate=2_000, seed=5, strategy=s) for s in STRATEGIES}
    p, st, c, lo = runs["progressive"], runs["static"], runs["central"], runs["local"]
    assert (p.oversell, p.false_refusals, p.leftover) == (0, 0, 0)
    assert (c.oversell, c.false_refusals, c.leftover) == (0, 0, 0)
    assert st.oversell == 0
    assert st.false_refusals > 0
    assert st.leftover > 0
    assert lo.oversell > 0
    assert c.per_thousand(c.calls.forwarded) >= 1000
    assert p.per_thousand(p.calls.on_demand) < c.per_thousand(c.calls.on_demand) / 2
    with pytest.raises(ValueError, match="strategy"):
        run(agents=2, seconds=1, strategy="nonsense")
