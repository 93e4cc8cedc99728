from __future__ import annotations

import pytest

from quota_rules.modes import Mode, grant_for, mode_for
from quota_rules.policy import Policy, resolve

# 4 sub-buckets, max slice 100: scarce below 400 free, central below 100 free.
POLICY = resolve(Policy(sub_buckets=4, min_slice=10, max_slice=100), total=100_000)


@pytest.mark.parametrize(
    ("free", "mode"),
    [
        (100_000, Mode.NORMAL),
        (400, Mode.NORMAL),
        (399, Mode.SCARCE),
        (100, Mode.SCARCE),
        (99, Mode.CENTRAL),
        (0, Mode.CENTRAL),
    ],
)
def test_mode_follows_what_is_free(free: int, mode: Mode) -> None:
    assert mode_for(POLICY, free) is mode


def test_a_central_strategy_is_always_central() -> None:
    assert mode_for(resolve(Policy(strategy="central"), total=10**9), 10**9) is Mode.CENTRAL


@pytest.mark.parametrize(
    ("mode", "need", "main", "slice_", "expected", "why"),
    [
        (Mode.NORMAL, 5, 10_000, 100, 100, "normal: a full slice"),
        (Mode.NORMAL, 150, 10_000, 100, 150, "normal: never less than the need"),
        (Mode.SCARCE, 5, 10_000, 100, 10, "scarce: shrinks to the need, at least the min slice"),
        (Mode.SCARCE, 50, 10_000, 100, 50, "scarce: the need when above the min slice"),
        (Mode.SCARCE, 5, 7, 100, 7, "scarce: never more than main"),
        (Mode.CENTRAL, 5, 10_000, 100, 5, "central: exactly the request"),
        (Mode.CENTRAL, 8, 7, 100, 0, "main cannot cover the need: nothing"),
        (Mode.NORMAL, 0, 100, 100, 0, "nothing needed"),
    ],
)
def test_grant_for(mode: Mode, need: int, main: int, slice_: int, expected: int, why: str) -> None:
    assert grant_for(mode, POLICY, need=need, main=main, slice_=slice_) == expected, why
