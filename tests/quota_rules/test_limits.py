from __future__ import annotations

import pytest

from quota_rules.limits import (
    MAX_AMOUNT,
    InvalidInput,
    check_amount,
    check_budget_id,
    check_request_id,
    check_total,
)


@pytest.mark.parametrize("amount", [1, 2, 10_000, MAX_AMOUNT])
def test_amounts_in_range_pass(amount: int) -> None:
    assert check_amount(amount) == amount


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "must be positive"),
        (-1, "must be positive"),
        (MAX_AMOUNT + 1, "exceeds the maximum"),
        (2**63 - 1, "exceeds the maximum"),
        (1.5, "integer"),
        (True, "integer"),
        ("5", "integer"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(amount: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_amount(amount)  # type: ignore[arg-type]


def test_total_may_be_zero_but_not_negative_or_too_large() -> None:
    assert check_total(0) == 0
    with pytest.raises(InvalidInput):
        check_total(-1)
    with pytest.raises(InvalidInput):
        check_total(MAX_AMOUNT + 1)


@pytest.mark.parametrize("budget_id", ["a", "coupons-eu", "b.2026_q4:x", "x" * 64])
def test_good_budget_ids(budget_id: str) -> None:
    assert check_budget_id(budget_id) == budget_id


@pytest.mark.parametrize("budget_id", ["", "-x", "a b", "a{b}", "x" * 65, "é"])
def test_bad_budget_ids(budget_id: str) -> None:
    with pytest.raises(InvalidInput, match="budget_id"):
        check_budget_id(budget_id)


def test_request_ids_are_bounded_in_bytes_not_characters() -> None:
    assert check_request_id("r" * 128)
    with pytest.raises(InvalidInput, match="129 bytes"):
        check_request_id("r" * 129)
    with pytest.raises(InvalidInput, match="130 bytes"):
        check_request_id("é" * 65)
    with pytest.raises(InvalidInput, match="required"):
        check_request_id("")
    with pytest.raises(InvalidInput, match="control"):
        check_request_id("a\nb")
