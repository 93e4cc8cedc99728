"""An agent's usage: what a report takes from the holding, and its wire form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quota_rules.usage import Usage, usage_from_pb, usage_pb

usages = st.builds(Usage, *(st.integers(0, 2**53 - 1) for _ in range(5)))


@given(usages, usages)
def test_net_since_is_the_difference_of_the_nets(u: Usage, applied: Usage) -> None:
    assert u.net_since(applied) == u.net - applied.net


@given(usages)
def test_the_wire_form_keeps_every_counter(u: Usage) -> None:
    wire = usage_pb("b1", u)
    assert wire.budget_id == "b1"
    assert usage_from_pb(wire) == u
