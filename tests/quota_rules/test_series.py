"""Which budgets get series of their own: the most active, a stable choice, never more than asked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quota_rules.limits import InvalidInput, check_budget_id
from quota_rules.series import OTHER, most_active


@pytest.mark.parametrize(
    ("scores", "limit", "shown"),
    [
        ({"a": 1.0, "b": 5.0, "c": 3.0}, 2, {"b", "c"}),
        ({"a": 1.0, "b": 5.0}, 2, {"a", "b"}),
        ({"a": 1.0, "b": 5.0}, 5, {"a", "b"}),
        ({"x": 0.0, "y": 0.0, "z": 0.0}, 2, {"x", "y"}),  # ties: the smaller ids
        ({"a": 1.0}, 0, set()),
        ({}, 3, set()),
    ],
)
def test_most_active(scores: dict[str, float], limit: int, shown: set[str]) -> None:
    assert most_active(scores, limit) == shown


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.floats(0, 1e6)), st.integers(0, 10))
def test_never_more_than_the_limit_and_none_less_active_than_one_left_out(
    scores: dict[str, float], limit: int
) -> None:
    shown = most_active(scores, limit)
    assert len(shown) == min(limit, len(scores))
    left_out = set(scores) - shown
    for s in shown:
        assert all(scores[s] >= scores[o] for o in left_out)


def test_the_other_label_is_no_budget_id() -> None:
    with pytest.raises(InvalidInput):
        check_budget_id(OTHER)
