"""The slice-wait policy: what a request its slice cannot cover does next (pure)."""

from __future__ import annotations

import pytest

from quota_rules.limits import InvalidInput
from region_agent.core.agent import Agent
from region_agent.core.waiting import MAX_SLICE_WAITS, Step, next_step
from region_agent.storage.journal import MemoryJournal
from tests.helpers.holdings import holding


@pytest.mark.parametrize(
    ("reason", "left_s", "waited", "open_", "step"),
    [
        (None, 0.1, 0, False, Step.DECIDE),  # the slice covers it (or nothing a slice changes)
        ("short", 0.0, 0, False, Step.DECIDE),  # no time left
        ("unknown", 0.1, 0, False, Step.FIRST_CONTACT),
        ("unknown", 0.1, 0, True, Step.AWAIT_FIRST_CONTACT),
        ("no_holding", 0.1, 0, True, Step.AWAIT_SLICE),
        ("short", 0.1, MAX_SLICE_WAITS - 1, False, Step.AWAIT_SLICE),
        ("short", 0.1, MAX_SLICE_WAITS, False, Step.DECIDE),  # waited enough: the center decides
    ],
)
def test_next_step(reason: str | None, left_s: float, waited: int, open_: bool, step: Step) -> None:
    assert next_step(reason, left_s=left_s, slices_waited=waited, first_contact_open=open_) is step


def test_the_agent_waits_only_where_a_slice_would_serve() -> None:
    a = Agent(MemoryJournal())
    ask = {"left_s": 0.1, "slices_waited": 0, "first_contact_open": False}
    assert a.next_wait("b1", 5, 0, **ask) is Step.FIRST_CONTACT  # never met
    a.adopt(holding(balance=10), sent_at=0)
    assert a.next_wait("b1", 5, 0, **ask) is Step.DECIDE  # covered
    assert a.next_wait("b1", 11, 0, **ask) is Step.AWAIT_SLICE  # short
    assert a.next_wait("b1", 5, 60_000, **ask) is Step.DECIDE  # the lease ran out: no slice cures that
    with pytest.raises(InvalidInput):
        a.next_wait("b1", 0, 0, **ask)
