"""The agent's pure decisions: what it may spend, when it forwards, exactly once, reservations."""

from __future__ import annotations

import pytest

from quota_rules.limits import MAX_AMOUNT, InvalidInput
from quota_rules.modes import Mode
from quota_rules.usage import Usage
from region_agent.core.agent import Agent, Config
from region_agent.core.records import Answer
from region_agent.core.serving import Forward
from region_agent.core.slices import BudgetSlice, Holding, State
from region_agent.storage.journal import MemoryJournal
from tests.helpers.holdings import LEASE_MS, holding


def ok(result: Answer | Forward) -> Answer:
    assert isinstance(result, Answer), result
    return result


def forward(result: Answer | Forward) -> Forward:
    assert isinstance(result, Forward), result
    return result


# ---- what may be spent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "local", "applied", "expected", "why"),
    [
        (100, Usage(), Usage(), 100, "nothing spent"),
        (100, Usage(consumed=30, seq=1), Usage(), 70, "spent locally, not yet reported"),
        (
            70,
            Usage(consumed=30, seq=1),
            Usage(consumed=30, seq=1),
            70,
            "spent and applied: no double count",
        ),
        (70, Usage(consumed=50, seq=3), Usage(consumed=30, seq=1), 50, "part applied"),
        (100, Usage(consumed=30, returned=10, seq=2), Usage(), 80, "a return gives back"),
        (100, Usage(reserved=25, seq=1), Usage(), 75, "reserved counts against it"),
        (100, Usage(released=40, seq=1), Usage(), 60, "released is gone"),
        (60, Usage(released=40, seq=1), Usage(released=40, seq=1), 60, "released and applied"),
        (
            10,
            Usage(consumed=30, seq=2),
            Usage(consumed=10, seq=1),
            -10,
            "more spent than held: negative",
        ),
    ],
)
def test_available_is_balance_minus_unapplied_net(
    balance: int, local: Usage, applied: Usage, expected: int, why: str
) -> None:
    s = BudgetSlice("b1", local, holding(balance=balance, applied=applied))
    assert s.available() == expected, why


def test_a_lost_or_absent_holding_has_nothing_available() -> None:
    assert BudgetSlice("b1").available() == 0
    assert BudgetSlice("b1", Usage(), holding(balance=100, lost=True)).available() == 0


def test_an_older_holding_is_ignored_and_a_newer_one_adopted(agent: Agent) -> None:
    assert agent.adopt(holding(version=5, balance=50), sent_at=0)
    assert not agent.adopt(holding(version=4, balance=500), sent_at=0)
    assert agent.available("b1") == 50
    assert agent.adopt(holding(version=6, balance=70), sent_at=0)
    assert agent.available("b1") == 70


def test_the_lease_runs_from_the_send_time_of_the_answered_request() -> None:
    a = Agent(MemoryJournal())
    a.adopt(holding(lease_ms=10_000), sent_at=5_000)
    assert isinstance(a.deduct("b1", "r1", 1, now=14_999), Answer)
    assert forward(a.deduct("b1", "r2", 1, now=15_000)).reason == "lease"


def test_a_holding_without_lease_renews_nothing_and_leases_never_shrink() -> None:
    a = Agent(MemoryJournal())
    a.adopt(holding(version=1, lease_ms=10_000), sent_at=20_000)
    a.adopt(holding(version=2, lease_ms=10_000), sent_at=1_000)  # answered late, sent early
    a.adopt(holding(version=3, lease_ms=0), sent_at=50_000)
    s = a.get("b1")
    assert s is not None
    assert s.lease_deadline == 30_000


@pytest.mark.parametrize(
    ("setup", "amount", "reason"),
    [
        (None, 1, "unknown"),
        ("track", 1, "no_holding"),
        (holding(lost=True), 1, "lost"),
        (holding(state=State.PAUSED), 1, "state"),
        (holding(state=State.CLOSED), 1, "state"),
        (holding(mode=Mode.CENTRAL), 1, "central"),
        (holding(lease_ms=0), 1, "lease"),
        (holding(balance=10), 11, "short"),
    ],
)
def test_what_the_slice_cannot_serve_is_forwarded(setup: object, amount: int, reason: str) -> None:
    a = Agent(MemoryJournal())
    if setup == "track":
        a.track("b1", now=0)
    elif setup is not None:
        assert isinstance(setup, Holding)
        a.adopt(setup, sent_at=0)
    assert forward(a.deduct("b1", "r1", amount, now=1)).reason == reason
    assert forward(a.reserve("b1", "r2", amount, 0, now=1)).reason == reason
    assert a.usage("b1") == Usage()


def test_a_local_deduction_counts_and_is_journaled(agent: Agent, journal: MemoryJournal) -> None:
    assert ok(agent.deduct("b1", "r1", 40, now=1)) == Answer("OK", 40)
    assert agent.usage("b1") == Usage(consumed=40, seq=1)
    assert journal.counters["b1"] == Usage(consumed=40, seq=1)
    assert agent.available("b1") == 60
    assert forward(agent.deduct("b1", "r2", 61, now=1)).reason == "short"
    assert ok(agent.deduct("b1", "r3", 60, now=1)).code == "OK"
    assert agent.available("b1") == 0


# ---- exactly once -----------------------------------------------------------------------------


def test_a_retry_gets_the_original_answer_once(agent: Agent) -> None:
    ok(agent.deduct("b1", "r1", 40, now=1))
    again = ok(agent.deduct("b1", "r1", 40, now=2))
    assert (again.code, again.amount) == ("EXISTS", 40)
    assert agent.usage("b1").consumed == 40


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.deduct("b1", "r1", 41, 2),
        lambda a: a.deduct("b2", "r1", 40, 2),
        lambda a: a.reserve("b1", "r1", 40, 0, 2),
        lambda a: a.return_("b1", "r1", "other", 40, 2),
    ],
    ids=["other amount", "other budget", "other kind", "a return"],
)
def test_the_same_id_with_other_content_is_a_conflict(agent: Agent, call: object) -> None:
    ok(agent.deduct("b1", "r1", 40, now=1))
    answer = ok(call(agent))  # type: ignore[operator]
    assert answer.code == "CONFLICT"
    assert agent.usage("b1") == Usage(consumed=40, seq=1)


def test_a_forwarded_id_stays_with_the_center(agent: Agent) -> None:
    assert forward(agent.deduct("b1", "big", 500, now=1)).reason == "short"
    # Retried while the slice is short, and once it could cover it: the center decides.
    agent.adopt(holding(version=2, balance=1000), sent_at=1)
    assert forward(agent.deduct("b1", "big", 500, now=2)).reason == "retry"
    assert agent.usage("b1").consumed == 0
    # Other content under that id is a conflict here already.
    assert ok(agent.deduct("b1", "big", 501, now=2)).code == "CONFLICT"


def test_a_remembered_forwarded_answer_answers_retries_and_a_refusal_is_not_kept(agent: Agent) -> None:
    forward(agent.deduct("b1", "big", 500, now=1))
    assert not agent.remember("big", Answer("INSUFFICIENT", message="budget b1 has less than 500 left"))
    assert isinstance(agent.deduct("b1", "big", 500, now=2), Forward)
    assert agent.remember("big", Answer("OK", 500))
    again = ok(agent.deduct("b1", "big", 500, now=3))
    assert (again.code, again.amount) == ("EXISTS", 500)
    assert not agent.remember("never-forwarded", Answer("OK", 1))


# ---- returns ----------------------------------------------------------------------------------


def test_returns_refund_a_local_deduction_up_to_what_is_left(agent: Agent) -> None:
    ok(agent.deduct("b1", "d1", 40, now=1))
    first = ok(agent.return_("b1", "ret1", "d1", 15, now=2))
    assert (first.code, first.amount, first.refundable) == ("OK", 15, 25)
    assert agent.available("b1") == 75
    too_much = ok(agent.return_("b1", "ret2", "d1", 26, now=3))
    assert (too_much.code, too_much.refundable) == ("EXCEEDS_DEDUCTED", 25)
    assert "only 25 left" in too_much.message
    again = ok(agent.return_("b1", "ret1", "d1", 15, now=4))
    assert (again.code, again.amount, again.refundable) == ("EXISTS", 15, 25)
    assert agent.usage("b1") == Usage(consumed=40, returned=15, seq=2)


def test_returns_of_what_this_agent_did_not_serve(agent: Agent) -> None:
    assert forward(agent.return_("b1", "ret1", "elsewhere", 5, now=1)).reason == "remote"
    ok(agent.deduct("b1", "d1", 10, now=1))
    assert ok(agent.return_("b2", "ret2", "d1", 5, now=1)).code == "UNKNOWN_REQUEST"
    assert ok(agent.return_("b1", "d1", "d1", 5, now=1)).code == "CONFLICT"
    assert agent.usage("b1").returned == 0


# ---- reservations -----------------------------------------------------------------------------


def test_reserve_then_confirm_less_releases_the_rest(agent: Agent) -> None:
    r = ok(agent.reserve("b1", "res1", 30, 5_000, now=1_000))
    assert (r.code, r.amount, r.expires_at_ms) == ("OK", 30, 6_000)
    assert agent.available("b1") == 70
    c = ok(agent.confirm("b1", "res1", 20, now=2_000))
    assert (c.code, c.amount, c.released) == ("OK", 20, 10)
    assert agent.usage("b1") == Usage(consumed=20, reserved=0, seq=2)
    assert agent.available("b1") == 80
    again = ok(agent.confirm("b1", "res1", 20, now=2_001))
    assert (again.code, again.amount, again.released) == ("EXISTS", 20, 10)
    assert ok(agent.confirm("b1", "res1", 21, now=2_001)).code == "CONFLICT"
    assert ok(agent.cancel("b1", "res1", now=2_001)).code == "CONFIRMED"
    # A confirmed reservation refunds like a deduction.
    assert ok(agent.return_("b1", "ret1", "res1", 20, now=2_002)).refundable == 0
    retry = ok(agent.reserve("b1", "res1", 30, 5_000, now=2_003))
    assert (retry.code, retry.expires_at_ms) == ("EXISTS", 6_000)


def test_cancel_releases_all_once(agent: Agent) -> None:
    ok(agent.reserve("b1", "res1", 30, 0, now=1))
    c = ok(agent.cancel("b1", "res1", now=2))
    assert (c.code, c.released) == ("OK", 30)
    assert agent.available("b1") == 100
    again = ok(agent.cancel("b1", "res1", now=3))
    assert (again.code, again.released) == ("EXISTS", 30)
    assert ok(agent.confirm("b1", "res1", 30, now=3)).code == "CANCELLED"
    assert agent.usage("b1") == Usage(seq=2)


def test_a_late_confirm_is_expired_even_before_the_sweep(agent: Agent) -> None:
    ok(agent.reserve("b1", "res1", 30, 1_000, now=0))
    assert ok(agent.confirm("b1", "res1", 30, now=999)).code == "OK"
    ok(agent.reserve("b1", "res2", 30, 1_000, now=0))
    late = ok(agent.confirm("b1", "res2", 30, now=1_000))
    assert (late.code, late.amount) == ("EXPIRED", 0)
    assert agent.usage("b1").reserved == 0
    assert ok(agent.cancel("b1", "res2", now=1_001)).code == "EXPIRED"
    assert agent.usage("b1").consumed == 30


def test_the_sweep_releases_expired_reservations_exactly_once(agent: Agent) -> None:
    ok(agent.reserve("b1", "res1", 30, 1_000, now=0))
    ok(agent.reserve("b1", "res2", 20, 5_000, now=0))
    assert agent.expire(now=999) == 0
    assert agent.expire(now=1_000) == 1
    assert agent.expire(now=1_001) == 0
    assert agent.usage("b1").reserved == 20
    assert ok(agent.cancel("b1", "res1", now=1_002)).code == "EXPIRED"
    assert agent.usage("b1").reserved == 20


def test_confirm_of_more_than_reserved_changes_nothing(agent: Agent) -> None:
    ok(agent.reserve("b1", "res1", 30, 0, now=1))
    over = ok(agent.confirm("b1", "res1", 31, now=2))
    assert over.code == "EXCEEDS_DEDUCTED"
    assert "holds only 30" in over.message
    assert agent.usage("b1") == Usage(reserved=30, seq=1)


def test_confirm_or_cancel_of_a_reservation_not_made_here(agent: Agent) -> None:
    assert forward(agent.confirm("b1", "elsewhere", 1, now=1)).reason == "remote"
    assert forward(agent.cancel("b1", "elsewhere", now=1)).reason == "remote"
    ok(agent.deduct("b1", "plain", 5, now=1))
    assert ok(agent.confirm("b1", "plain", 5, now=1)).code == "UNKNOWN_REQUEST"
    assert agent.usage("b1").consumed == 5


# ---- giving back ------------------------------------------------------------------------------


def test_release_is_bounded_by_the_unreserved_available(agent: Agent) -> None:
    ok(agent.reserve("b1", "res1", 30, 0, now=1))
    ok(agent.deduct("b1", "d1", 20, now=1))
    assert agent.release("b1", 1_000) == 50
    assert agent.available("b1") == 0
    assert agent.release("b1", 1) == 0
    assert agent.usage("b1") == Usage(consumed=20, reserved=30, released=50, seq=3)
    # The reservation is still whole.
    assert ok(agent.confirm("b1", "res1", 30, now=2)).code == "OK"


def test_a_reclaim_answer_releases_up_to_the_order(agent: Agent) -> None:
    released, usage = agent.answer_reclaim("b1", 30)
    assert (released, usage.released) == (30, 30)
    assert agent.answer_reclaim("nothing-here", 30) == (0, Usage())
    agent.adopt(holding(version=2, balance=100, lost=True), sent_at=0)
    assert agent.answer_reclaim("b1", 30)[0] == 0


# ---- bad input, journal, retention ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.deduct("b1", "r", 0, 1),
        lambda a: a.deduct("b1", "r", -5, 1),
        lambda a: a.deduct("b1", "r", MAX_AMOUNT + 1, 1),
        lambda a: a.deduct("b1", "r", True, 1),
        lambda a: a.deduct("b1", "r", 1.5, 1),
        lambda a: a.deduct("b1", "", 1, 1),
        lambda a: a.deduct("b1", "x" * 129, 1, 1),
        lambda a: a.deduct("", "r", 1, 1),
        lambda a: a.deduct("{b1}", "r", 1, 1),
        lambda a: a.return_("b1", "r", "", 1, 1),
        lambda a: a.reserve("b1", "r", 1, -1, 1),
        lambda a: a.reserve("b1", "r", 1, 10**12, 1),
        lambda a: a.confirm("b1", "", 1, 1),
        lambda a: a.confirm("b1", "r", 0, 1),
        lambda a: a.cancel("b1", "bad\nid", 1),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(agent: Agent, journal: MemoryJournal, call: object) -> None:
    before = dict(journal.counters)
    with pytest.raises(InvalidInput):
        call(agent)  # type: ignore[operator]
    assert journal.counters == before
    assert len(agent.records) == 0
    assert agent.available("b1") == 100


def test_a_restart_reads_the_journal_and_releases_dead_reservations() -> None:
    journal = MemoryJournal({"b1": Usage(consumed=40, reserved=10, seq=7)})
    a = Agent(journal)
    assert a.usage("b1") == Usage(consumed=40, reserved=0, seq=8)
    assert journal.counters["b1"] == a.usage("b1")
    assert a.budgets() == ["b1"]
    # Nothing is spendable before the center's holding and lease arrive.
    assert forward(a.deduct("b1", "r1", 1, now=1)).reason == "no_holding"


def test_counters_behind_what_the_center_applied_continue_from_it() -> None:
    a = Agent(MemoryJournal())
    applied = Usage(consumed=70, seq=12)
    a.adopt(holding(balance=30, applied=applied), sent_at=0)
    assert a.usage("b1") == applied
    assert a.available("b1") == 30


def test_records_go_after_retention_or_beyond_the_bound() -> None:
    a = Agent(MemoryJournal(), Config(retention_ms=1_000, max_records=3))
    a.adopt(holding(balance=1_000), sent_at=0)
    for i in range(3):
        ok(a.deduct("b1", f"r{i}", 1, now=i))
    ok(a.reserve("b1", "held", 1, 60_000, now=3))
    assert len(a.records) == 3  # r0 went first
    assert ok(a.deduct("b1", "r1", 1, now=4)).code == "EXISTS"
    a.expire(now=2_000)
    assert len(a.records) == 1  # the held reservation stays until it ends
    assert ok(a.deduct("b1", "r1", 1, now=2_001)).code == "OK"  # a new request after retention
    assert ok(a.confirm("b1", "held", 1, now=2_002)).code == "OK"


def test_unix_offset_sets_expires_at() -> None:
    a = Agent(MemoryJournal(), Config(unix_offset_ms=1_700_000_000_000))
    a.adopt(holding(lease_ms=LEASE_MS), sent_at=0)
    assert ok(a.reserve("b1", "r", 1, 1_000, now=10)).expires_at_ms == 1_700_000_001_010
