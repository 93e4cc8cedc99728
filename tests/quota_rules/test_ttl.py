"""The TTL a reservation gets, at the center and at an agent."""

from __future__ import annotations

import pytest

from quota_rules.limits import InvalidInput
from quota_rules.ttl import resolve_ttl

DEFAULT, MAX = 300_000, 86_400_000


@pytest.mark.parametrize(
    ("asked", "gets"), [(0, DEFAULT), (1, 1), (5_000, 5_000), (MAX, MAX), (DEFAULT, DEFAULT)]
)
def test_ttl_zero_takes_the_default(asked: int, gets: int) -> None:
    assert resolve_ttl(asked, DEFAULT, MAX) == gets


@pytest.mark.parametrize(
    ("asked", "says"), [(-1, "negative"), (MAX + 1, "maximum"), (2**63 - 1, "maximum"), (True, "integer")]
)
def test_ttl_out_of_range_is_invalid(asked: int, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        resolve_ttl(asked, DEFAULT, MAX)
