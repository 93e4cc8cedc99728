"""``Agent.deduct_many`` (the agent's DeductBatch) decides exactly as ``deduct`` one item at a time.

The batch serves the new requests of a covered budget together (their records, then one update
of the counters); these tests hold it to the sequential answers, counters and records, through
a restart, and check that a crash between the records and the counters keeps none of the batch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quota_rules.fingerprints import deduct_fingerprint
from quota_rules.limits import InvalidInput
from quota_rules.usage import Usage
from region_agent.core.agent import Agent
from region_agent.core.records import Answer, Forwarded, Record, Reservation, Served
from region_agent.core.serving import Forward
from region_agent.storage.journal import Journal
from region_agent.storage.record_log import RecordLog, path_for
from tests.helpers.holdings import holding

BUDGETS = ("b1", "b2", "unheld")
Item = tuple[str, str, int]


@contextmanager
def opened(path: Path, *, now: int = 0, fresh: bool = True) -> Iterator[Agent]:
    """An agent on a journal and record log at ``path``; when ``fresh``, holding 100 of b1, 60 of b2."""
    with ExitStack() as stack:
        journal = stack.enter_context(Journal(path))
        log = stack.enter_context(RecordLog(path_for(path), journal, capacity=4096))
        agent = Agent(journal, now=now, record_log=log)
        if fresh:
            agent.adopt(holding("b1", balance=100), sent_at=now)
            agent.adopt(holding("b2", balance=60), sent_at=now)
        yield agent


def outcome(result: Answer | Forward) -> tuple[object, ...]:
    if isinstance(result, Answer):
        return ("answer", result.code, result.amount, result.message)
    return ("forward", result.reason, result.bound)


def state(agent: Agent, ids: list[str]) -> tuple[object, ...]:
    """What a caller can observe: per budget what is left and used, per id its record."""
    budgets = tuple((b, agent.available(b), agent.usage(b).consumed) for b in BUDGETS)
    records: list[object] = []
    for request_id in ids:
        r = agent.records.get(request_id)
        if isinstance(r, Served):
            records.append((request_id, "served", r.budget_id, r.fingerprint, r.answer.amount))
        elif isinstance(r, Forwarded):
            records.append((request_id, "forwarded", r.fingerprint))
        else:
            records.append((request_id, r))
    return budgets, tuple(records)


items = st.tuples(
    st.sampled_from(BUDGETS),
    st.sampled_from([f"r{i}" for i in range(12)]),
    st.integers(min_value=1, max_value=45),
)
batches = st.lists(st.lists(items, min_size=1, max_size=8), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(batches)
def test_a_batch_answers_as_one_deduction_after_another(runs: list[list[Item]]) -> None:
    ids = sorted({request_id for run in runs for _, request_id, _ in run})
    with tempfile.TemporaryDirectory() as tmp:
        batched, sequential = Path(tmp) / "batched.journal", Path(tmp) / "sequential.journal"
        with opened(batched) as a, opened(sequential) as b:
            for now, run in enumerate(runs, start=1):
                decided = a.deduct_many(run, now)
                assert not decided.waiting
                got = [outcome(r) for r in decided.answers if r is not None]
                want = [outcome(b.deduct(budget, rid, amount, now)) for budget, rid, amount in run]
                assert got == want, run
                assert state(a, ids) == state(b, ids)
                assert a.usage("b1").seq <= b.usage("b1").seq  # one counter update per budget and batch
        # Read back after a restart: the same records, the same counters.
        with opened(batched, fresh=False) as a, opened(sequential, fresh=False) as b:
            for budget in BUDGETS:
                assert a.usage(budget).consumed == b.usage(budget).consumed
            for request_id in ids:
                for budget in BUDGETS:
                    assert outcome(a.deduct(budget, request_id, 7, 99)) == outcome(
                        b.deduct(budget, request_id, 7, 99)
                    )


def test_a_covered_batch_is_one_counter_update(tmp_path: Path) -> None:
    with opened(tmp_path / "a.journal") as a:
        before = a.usage("b1")
        answers = a.deduct_many([("b1", f"r{i}", 3) for i in range(10)], now=5).answers
        assert [outcome(x) for x in answers] == [("answer", "OK", 3, "")] * 10
        after = a.usage("b1")
        assert (after.consumed - before.consumed, after.seq - before.seq) == (30, 1)


def test_a_bad_item_changes_nothing_and_is_named(tmp_path: Path) -> None:
    with opened(tmp_path / "a.journal") as a:
        before = a.usage("b1")
        with pytest.raises(InvalidInput, match=r"items\[2\]: amount must be positive"):
            a.deduct_many([("b1", "r1", 1), ("b1", "r2", 1), ("b1", "r3", 0)], now=5)
        with pytest.raises(InvalidInput, match=r"items\[0\]: budget_id"):
            a.deduct_many([("no spaces", "r1", 1)], now=5)
        assert a.usage("b1") == before
        assert a.records.get("r1") is None


class _KilledJournal(Journal):
    """A journal whose next counters write never happens: the process died between the two stores."""

    dead = False

    def write(self, budget_id: str, counters: Usage) -> None:
        if self.dead:
            raise SystemExit("killed between the records and the counters")
        super().write(budget_id, counters)


def test_a_crash_before_the_counters_keeps_none_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    with _KilledJournal(path) as journal, RecordLog(path_for(path), journal, capacity=64) as log:
        agent = Agent(journal, record_log=log)
        agent.adopt(holding("b1", balance=100), sent_at=0)
        assert outcome(agent.deduct("b1", "before", 5, now=1)) == ("answer", "OK", 5, "")
        journal.dead = True
        with pytest.raises(SystemExit):
            agent.deduct_many([("b1", f"lost-{i}", 2) for i in range(6)], now=2)
    with opened(path, fresh=False, now=3) as again:
        assert again.usage("b1").consumed == 5
        assert all(again.records.get(f"lost-{i}") is None for i in range(6))
        assert isinstance(again.records.get("before"), Served)


def test_wait_gives_back_an_unbound_forward_and_changes_nothing(tmp_path: Path) -> None:
    with opened(tmp_path / "a.journal") as a:
        waiting = a.deduct("b1", "big", 500, now=1, wait=True)
        assert outcome(waiting) == ("forward", "short", False)
        assert a.records.get("big") is None
        bound = a.deduct("b1", "big", 500, now=2)
        assert outcome(bound) == ("forward", "short", True)
        assert isinstance(a.records.get("big"), Forwarded)
        # A reason no slice cures is bound at once, even when asked to wait.
        a.adopt(holding("b2", balance=60, version=2, lost=True), sent_at=2)
        assert outcome(a.deduct("b2", "x", 1, now=3, wait=True)) == ("forward", "lost", True)


def test_a_batch_wraps_the_ring_and_steps_over_a_held_reservation(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    with Journal(path) as journal, RecordLog(path_for(path), journal, capacity=8) as log:
        agent = Agent(journal, record_log=log)
        agent.adopt(holding("b1", balance=100), sent_at=0)
        assert outcome(agent.reserve("b1", "held", 10, 0, now=1)) == ("answer", "OK", 10, "")
        for k in range(3):  # 3 × 5 entries through a ring of 8, the reservation's slot kept
            decided = agent.deduct_many([("b1", f"d{k}-{i}", 1) for i in range(5)], now=2 + k)
            assert [outcome(x) for x in decided.answers if x is not None] == [("answer", "OK", 1, "")] * 5
    with opened(path, fresh=False, now=10) as again:
        assert again.usage("b1").consumed == 15
        kept = [rid for rid in again.records.ids() if rid.startswith("d")]
        assert kept == [f"d1-{i}" for i in range(3, 5)] + [f"d2-{i}" for i in range(5)]  # the newest 7
        r = again.records.get("held")
        assert isinstance(r, Reservation)
        assert r.state == "expired"  # held at the restart: released
        assert outcome(again.deduct("b1", "d2-4", 1, now=11)) == (
            "answer",
            "EXISTS",
            1,
            "request d2-4 was already applied",
        )


def test_served_records_carry_the_fingerprint_the_center_binds(tmp_path: Path) -> None:
    # A served record keeps the fingerprint the center binds the id to, so that a retry of it
    # at the center (after the agent forwarded it) is not a conflict.
    with opened(tmp_path / "a.journal") as a:
        a.deduct("b1", "one", 3, now=1)
        a.deduct_many([("b2", "two", 4), ("b2", "three", 5)], now=2)
        for request_id, budget_id, amount in (("one", "b1", 3), ("two", "b2", 4), ("three", "b2", 5)):
            r = a.records.get(request_id)
            assert isinstance(r, Served)
            assert r.fingerprint == deduct_fingerprint(budget_id, amount)


class _KilledLog(RecordLog):
    """A record log whose next batch never gets written: the process died before it."""

    dead = False

    def write_many(self, records: Sequence[tuple[str, Record]], counter_seq: int) -> None:
        if self.dead:
            raise SystemExit("killed before the batch's records")
        super().write_many(records, counter_seq)


def test_a_crash_before_the_records_leaves_the_counters_alone(tmp_path: Path) -> None:
    # The records go first: counters that counted a batch whose records were lost would let a
    # retry be served a second time.
    path = tmp_path / "a.journal"
    with Journal(path) as journal, _KilledLog(path_for(path), journal, capacity=64) as log:
        agent = Agent(journal, record_log=log)
        agent.adopt(holding("b1", balance=100), sent_at=0)
        log.dead = True
        with pytest.raises(SystemExit):
            agent.deduct_many([("b1", f"lost-{i}", 2) for i in range(6)], now=2)
    with opened(path, fresh=False, now=3) as again:
        assert again.usage("b1").consumed == 0
