"""Table tests of the settlement's pure rules: how much of a lost sub-bucket is booked as
consumed or released to main, and whose spend log a generation still waits for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quota_center.ledger.spend_log import DoubtRow, InstanceRow
from quota_center.recovery.settlement import Step, blocking, bounds, plan


@pytest.mark.parametrize(
    ("balance", "booked", "logged", "complete", "step"),
    [
        (1_000, 0, 400, True, Step(400, 600)),  # consumed 400 of its slice, the rest goes back
        (1_000, 0, 400, False, Step(400, None)),  # log incomplete: the rest stays in doubt
        (1_000, 0, 1_000, True, Step(1_000, 0)),  # spent it all
        (600, 400, 450, True, Step(50, 550)),  # a later pass: 50 more entries arrived
        (600, 400, 400, True, Step(0, 600)),  # nothing new: only the release
        (700, 400, 100, False, Step(-300, None)),  # late returns: consumed goes back into doubt
        (0, 0, -6, True, Step(-6, 6)),  # held only a refund of an older generation's deduction
        (-100, 0, -150, True, Step(-150, 50)),  # ...and gave 100 of refunds back to main
        (-100, 0, -50, False, Step(-100, None)),  # it held at least 0: unbook 100 whatever the log
        (500, 0, 900, True, Step(500, 0)),  # a log showing more than it had: never below 0
        (0, 0, 0, False, Step(0, None)),
    ],
)
def test_plan(balance: int, booked: int, logged: int, complete: bool, step: Step) -> None:
    assert plan(balance=balance, booked=booked, logged=logged, complete=complete) == step


@given(
    granted=st.integers(-10_000, 10_000),
    held=st.integers(0, 10_000),
    partial=st.lists(st.integers(-20_000, 20_000), max_size=6),
)
def test_passes_over_a_growing_log_end_exactly_at_the_truth(
    granted: int, held: int, partial: list[int]
) -> None:
    """Whatever the log showed on earlier passes, once it is complete the holder books exactly what
    the sub-bucket consumed and releases exactly what it held, and it is never left below 0."""
    consumed = granted - held  # a lost sub-bucket held granted - consumed >= 0
    balance, booked = granted, 0
    for logged in partial:
        step = plan(balance=balance, booked=booked, logged=logged, complete=False)
        balance, booked = balance - step.book, booked + step.book
        assert balance >= 0
        assert step.release is None
    final = plan(balance=balance, booked=booked, logged=consumed, complete=True)
    assert booked + final.book == consumed
    assert final.release == held


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def instance(
    *, started: int = -60, seen: int = 0, flushed: int = 0, stopped: int | None = None
) -> InstanceRow:
    def at(s: int) -> datetime:
        return T0 + timedelta(seconds=s)

    return InstanceRow(
        "i", "center-1", at(started), at(seen), at(flushed), None if stopped is None else at(stopped)
    )


@pytest.mark.parametrize(
    ("row", "blocks"),
    [
        (instance(flushed=-1), True),  # alive, behind the cutoff
        (instance(flushed=0), False),  # exactly at the cutoff: every earlier operation is written
        (instance(flushed=5), False),
        (instance(started=0, flushed=-1), False),  # started at the cutoff: nothing of it is older
        (instance(flushed=-50, stopped=-40), False),  # stopped cleanly: wrote everything first
        (instance(seen=-31, flushed=-31), False),  # silent since before the window: gone
        (instance(seen=-30, flushed=-31), True),  # seen within the window: may still write
    ],
)
def test_blocking(row: InstanceRow, blocks: bool) -> None:
    found = blocking([row], cutoff=T0, since=T0 - timedelta(seconds=30))
    assert found == ([row] if blocks else [])


def test_doubt_holder_names_say_whose_and_when() -> None:
    row = DoubtRow("doubt:sub:12@7", 5, 0, None, None)
    assert (row.sub, row.gen) == ("sub:12", 7)


@pytest.mark.parametrize(
    ("in_doubt", "booked", "logged", "complete", "expected"),
    [
        (100, 0, 30, False, (30, 100)),  # what the log shows was consumed; the rest may have been
        (100, 0, 30, True, (30, 30)),  # a complete log is the answer
        (70, 30, 30, False, (0, 70)),  # booked already: nothing more is known to be consumed
        (70, 30, 200, False, (70, 70)),  # never more than is in doubt
        (0, 0, 0, True, (0, 0)),
    ],
)
def test_bounds_on_what_a_holder_consumed(
    in_doubt: int, booked: int, logged: int, complete: bool, expected: tuple[int, int]
) -> None:
    assert bounds(in_doubt=in_doubt, booked=booked, logged=logged, complete=complete) == expected
