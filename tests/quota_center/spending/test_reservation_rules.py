"""Table tests of the pure reservation rules: script outcome -> answer (TTL and fingerprint: tests/quota_rules)."""

from __future__ import annotations

import pytest

from quota_center.buckets.store import Outcome
from quota_center.spending.reservations import (
    ReservationAnswer,
    cancel_answer,
    confirm_answer,
    reserve_answer,
)
from quota_rules.results import result_code


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (Outcome("OK", 10, 1_000), ReservationAnswer("OK", 10, expires_at_ms=1_000)),
        (Outcome("EXISTS", 10, 1_000), ReservationAnswer("EXISTS", 10, expires_at_ms=1_000)),
        (Outcome("CONFLICT"), ReservationAnswer("CONFLICT")),
        (Outcome("PAUSED"), ReservationAnswer("BUDGET_PAUSED")),
        (Outcome("CLOSED"), ReservationAnswer("BUDGET_CLOSED")),
        (Outcome("SHORT", 3), None),
        (Outcome("LOST"), None),
    ],
)
def test_reserve_outcomes(outcome: Outcome, answer: ReservationAnswer | None) -> None:
    got = reserve_answer(outcome, "b", "r")
    assert _without_message(got) == answer


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (Outcome("OK", 60, 40), ReservationAnswer("OK", 60, 40)),
        (Outcome("EXISTS", 60, 40), ReservationAnswer("EXISTS", 60, 40)),
        (Outcome("CONFLICT", 60), ReservationAnswer("CONFLICT")),
        (Outcome("CANCELLED"), ReservationAnswer("CANCELLED")),
        # what this call released is for the metric only: a late confirm's answer does not
        # depend on whether the sweep got there first
        (Outcome("EXPIRED", 0, 100), ReservationAnswer("EXPIRED")),
        (Outcome("EXPIRED", 0, 0), ReservationAnswer("EXPIRED")),
        (Outcome("EXCEEDS", 0, 100), ReservationAnswer("EXCEEDS_DEDUCTED")),
        (Outcome("UNKNOWN"), ReservationAnswer("UNKNOWN_REQUEST")),
        (Outcome("DROPPED"), ReservationAnswer("UNKNOWN_REQUEST")),
        (Outcome("LOST"), None),
    ],
)
def test_confirm_outcomes(outcome: Outcome, answer: ReservationAnswer | None) -> None:
    assert _without_message(confirm_answer(outcome, "b", "r")) == answer


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (Outcome("OK", 100), ReservationAnswer("OK", released=100)),
        (Outcome("EXISTS", 100), ReservationAnswer("EXISTS", released=100)),
        (Outcome("CONFIRMED"), ReservationAnswer("CONFIRMED")),
        (Outcome("EXPIRED", 100), ReservationAnswer("EXPIRED")),
        (Outcome("UNKNOWN"), ReservationAnswer("UNKNOWN_REQUEST")),
        (Outcome("DROPPED"), ReservationAnswer("UNKNOWN_REQUEST")),
        (Outcome("LOST"), None),
    ],
)
def test_cancel_outcomes(outcome: Outcome, answer: ReservationAnswer | None) -> None:
    assert _without_message(cancel_answer(outcome, "b", "r")) == answer


def test_every_refusal_says_why_and_every_code_is_on_the_wire() -> None:
    answers = [
        *(reserve_answer(Outcome(s), "b", "r") for s in ("OK", "EXISTS", "CONFLICT", "PAUSED", "CLOSED")),
        *(
            confirm_answer(Outcome(s, 1, 1), "b", "r")
            for s in ("OK", "EXISTS", "CONFLICT", "CANCELLED", "EXPIRED", "EXCEEDS", "UNKNOWN", "DROPPED")
        ),
        *(
            cancel_answer(Outcome(s, 1), "b", "r")
            for s in ("OK", "EXISTS", "CONFIRMED", "EXPIRED", "UNKNOWN", "DROPPED")
        ),
    ]
    for a in answers:
        assert a is not None
        result_code(a.code)  # raises for a name the proto does not have
        assert a.code == "OK" or a.message


def _without_message(a: ReservationAnswer | None) -> ReservationAnswer | None:
    if a is None:
        return None
    return ReservationAnswer(a.code, a.amount, a.released, a.expires_at_ms)
