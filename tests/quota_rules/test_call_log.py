"""Calls logged with their fields: every failed or refused one within a rate per method and code
(the next line counts those left out), a sample of the successful ones."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from quota_rules.call_log import CallLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _log(clock: Clock, ok_sample: float = 0.0, draws: list[float] | None = None) -> CallLog:
    pending = list(draws or [])
    return CallLog(
        logging.getLogger("test.calls"),
        ok_sample=ok_sample,
        per_s=2,
        clock=clock,
        draw=lambda: pending.pop(0),
    )


REQUEST = SimpleNamespace(budget_id="b1", request_id="r-7")


def test_refusals_carry_their_fields_and_a_storm_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    calls = _log(clock)
    caplog.set_level(logging.INFO, "test.calls")
    for _ in range(5):
        calls.record("Deduct", "INSUFFICIENT", 0.0012, REQUEST)
    calls.record("Deduct", "UNAVAILABLE", 0.5, REQUEST)  # another code: a window of its own
    clock.now += 1
    calls.record("Deduct", "INSUFFICIENT", 0.001, REQUEST)
    lines = [(r.levelname, r.__dict__.get("code"), r.__dict__.get("suppressed")) for r in caplog.records]
    assert lines == [
        ("INFO", "INSUFFICIENT", 0),
        ("INFO", "INSUFFICIENT", 0),
        ("WARNING", "UNAVAILABLE", 0),
        ("INFO", "INSUFFICIENT", 3),  # the three left out in the second before
    ]
    first = caplog.records[0]
    assert (first.method, first.budget_id, first.request_id, first.latency_ms) == (  # type: ignore[attr-defined]
        "Deduct",
        "b1",
        "r-7",
        1.2,
    )
    assert "3 more like it not logged" in caplog.records[-1].getMessage()


def test_successful_calls_are_sampled(caplog: pytest.LogCaptureFixture) -> None:
    calls = _log(Clock(), ok_sample=0.25, draws=[0.1, 0.9, 0.3, 0.2])
    caplog.set_level(logging.INFO, "test.calls")
    for _ in range(4):
        calls.record("Deduct", "OK", 0.001, REQUEST)
    assert len(caplog.records) == 2  # the draws below 0.25
    assert _log(Clock(), ok_sample=0.0).ok_sample == 0.0


def test_nothing_is_logged_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "test.calls")
    calls = _log(Clock())
    calls.record("Deduct", "INSUFFICIENT", 0.001, REQUEST)
    calls.record("Confirm", "INTERNAL", 0.001, SimpleNamespace(budget_id="b2", reservation_id="res-1"))
    assert [(r.code, r.request_id) for r in caplog.records] == [("INTERNAL", "res-1")]  # type: ignore[attr-defined]
