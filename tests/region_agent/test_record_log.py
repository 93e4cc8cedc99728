"""The record log: request records that survive a restart or SIGKILL, next to the journal.

A retry after a restart gets the original answer (EXISTS) or CONFLICT; a refund is bounded by
what is left; reservations held at a crash end as expired; torn or never-counted entries are
ignored; the ring wraps, steps over held reservations, grows; foreign files are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from quota_rules.usage import Usage
from region_agent.core.agent import Agent, Config
from region_agent.core.records import Answer, Forwarded, Reservation, Served
from region_agent.core.serving import Forward
from region_agent.storage.entries import ENTRY_SIZE
from region_agent.storage.journal import Journal
from region_agent.storage.record_log import (
    HEADER_SIZE,
    RecordLog,
    RecordLogError,
    RecordLogLocked,
    path_for,
)
from tests.helpers.holdings import holding


@contextmanager
def running(path: Path, *, offset: int = 0, now: int = 0, capacity: int = 64) -> Iterator[Agent]:
    """An agent on the journal at ``path`` and its record log, holding 100 of b1 when new."""
    with (
        Journal(path) as journal,
        RecordLog(path_for(path), journal, capacity=capacity, unix_offset_ms=offset) as records,
    ):
        agent = Agent(journal, Config(unix_offset_ms=offset), now=now, record_log=records)
        agent.adopt(holding(balance=100, version=now + 1), sent_at=now)
        yield agent


def answer(result: Answer | Forward) -> tuple[str, int]:
    assert isinstance(result, Answer), result
    return result.code, result.amount


def test_retries_after_a_restart_get_the_original_answers(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    # Another monotonic origin after the restart: records are kept in unix ms.
    with running(path, offset=1_000_000, now=10) as a:
        assert answer(a.deduct("b1", "d1", 30, now=10)) == ("OK", 30)
        assert answer(a.return_("b1", "r1", "d1", 10, now=11)) == ("OK", 10)
        assert answer(a.reserve("b1", "v1", 5, 0, now=12)) == ("OK", 5)
        assert answer(a.confirm("b1", "v1", 4, now=13)) == ("OK", 4)
        assert answer(a.reserve("b1", "v2", 6, 0, now=14)) == ("OK", 6)
        assert answer(a.cancel("b1", "v2", now=15)) == ("OK", 0)
        assert isinstance(a.deduct("b9", "f1", 3, now=16), Forward)  # not held: bound to the center
        reserve_expiry = a.reserve("b1", "v2", 6, 0, now=17)
        spent = a.usage("b1")
    with running(path, offset=400_000, now=600_010) as a:
        now = 600_020
        assert a.usage("b1") == spent
        assert answer(a.deduct("b1", "d1", 30, now)) == ("EXISTS", 30)
        assert answer(a.deduct("b1", "d1", 31, now))[0] == "CONFLICT"
        assert answer(a.deduct("b2", "d1", 30, now))[0] == "CONFLICT"
        again = a.return_("b1", "r1", "d1", 10, now)
        assert isinstance(again, Answer)
        assert (again.code, again.amount, again.refundable) == ("EXISTS", 10, 20)
        assert answer(a.return_("b1", "r1", "d1", 11, now))[0] == "CONFLICT"
        # At most what is left of d1 (30 - 10) can still be refunded.
        too_much = a.return_("b1", "r2", "d1", 21, now)
        assert isinstance(too_much, Answer)
        assert (too_much.code, too_much.refundable) == ("EXCEEDS_DEDUCTED", 20)
        reserved = a.reserve("b1", "v2", 6, 0, now)
        assert isinstance(reserved, Answer)
        assert isinstance(reserve_expiry, Answer)
        assert (reserved.code, reserved.expires_at_ms) == ("EXISTS", reserve_expiry.expires_at_ms)
        confirmed = a.confirm("b1", "v1", 4, now)
        assert isinstance(confirmed, Answer)
        assert (confirmed.code, confirmed.amount, confirmed.released) == ("EXISTS", 4, 1)
        assert answer(a.confirm("b1", "v1", 5, now))[0] == "CONFLICT"
        assert answer(a.cancel("b1", "v2", now))[0] == "EXISTS"
        assert a.usage("b1") == spent  # nothing applied twice
        # Forwarded before the restart: still the center's.
        assert isinstance(a.deduct("b9", "f1", 3, now), Forward)
        assert answer(a.return_("b1", "r2", "d1", 20, now)) == ("OK", 20)
    with running(path, offset=0, now=1_000_100) as a:
        assert answer(a.return_("b1", "r3", "d1", 1, now=1_000_100))[0] == "EXCEEDS_DEDUCTED"


def test_a_reservation_held_at_a_crash_is_released_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path) as a:
        assert answer(a.reserve("b1", "v1", 40, 60_000, now=1)) == ("OK", 40)
        assert a.available("b1") == 60
        assert a.usage("b1").reserved == 40
    with running(path, now=2) as a:
        assert a.usage("b1").reserved == 0
        # Its amount went back to the slice: the reservation expired.
        confirm = a.confirm("b1", "v1", 40, now=3)
        assert isinstance(confirm, Answer)
        assert confirm.code == "EXPIRED", confirm
        assert answer(a.cancel("b1", "v1", now=3))[0] == "EXPIRED"
        assert answer(a.reserve("b1", "v1", 40, 60_000, now=3))[0] == "EXISTS"
        seq = a.usage("b1").seq
    with running(path, now=4) as a:  # the ending is itself durable: nothing released twice
        assert a.usage("b1") == Usage(seq=seq)
        assert answer(a.confirm("b1", "v1", 40, now=5))[0] == "EXPIRED"


def test_records_past_retention_are_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path) as a:
        a.deduct("b1", "old", 1, now=1)
        a.deduct("b1", "new", 1, now=5_000)
    with (
        Journal(path) as j,
        RecordLog(path_for(path), j) as records,
    ):
        a = Agent(j, Config(retention_ms=10_000), now=12_000, record_log=records)
        assert a.records.get("old") is None
        assert isinstance(a.records.get("new"), Served)


def test_the_ring_wraps_keeping_the_newest_entries(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path, capacity=8) as a:
        for i in range(20):
            a.deduct("b1", f"d{i}", 1, now=i)
    assert path_for(path).stat().st_size == HEADER_SIZE + 8 * ENTRY_SIZE
    with running(path, capacity=8, now=100) as a:
        assert a.records.ids() == [f"d{i}" for i in range(12, 20)]
        a.deduct("b1", "d20", 1, now=101)  # overwrites the oldest, d12
    with running(path, capacity=8, now=200) as a:
        assert a.records.ids() == [f"d{i}" for i in range(13, 21)]


def test_an_update_is_a_new_entry_and_the_newest_version_wins(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path, capacity=4) as a:
        a.deduct("b1", "d1", 30, now=1)
        for i in range(3):
            a.deduct("b1", f"x{i}", 1, now=2)
        a.return_("b1", "r1", "d1", 5, now=3)  # rewrites d1 after x0..x2: it outlives them
        a.deduct("b1", "x3", 1, now=4)
    with running(path, capacity=4, now=5) as a:
        d1 = a.records.get("d1")
        assert isinstance(d1, Served)
        assert d1.returned == 5
        assert a.records.get("x0") is None


def test_a_held_reservation_is_stepped_over_and_a_full_ring_grows(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path, capacity=4) as a:
        a.reserve("b1", "v0", 1, 60_000, now=1)
        for i in range(10):
            a.deduct("b1", f"d{i}", 1, now=2)
        assert isinstance(a.records.get("v0"), Reservation)
        for i in range(1, 6):  # more held reservations than entries: the file doubles
            a.reserve("b1", f"v{i}", 1, 60_000, now=3)
    assert path_for(path).stat().st_size == HEADER_SIZE + 8 * ENTRY_SIZE
    with running(path, capacity=4, now=10) as a:
        for i in range(6):
            r = a.records.get(f"v{i}")
            assert isinstance(r, Reservation), i
            assert r.state == "expired"
        assert a.usage("b1").reserved == 0


def test_a_torn_entry_is_ignored_and_its_record_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path) as a:
        a.deduct("b1", "d1", 30, now=1)  # entry 0
        a.deduct("b1", "d2", 7, now=1)  # entry 1
        a.return_("b1", "r1", "d1", 10, now=2)  # entries 2 (d1, returned 10) and 3 (r1)
    # Entries 1 and 2 torn, as a kill in the middle of a store leaves one.
    _scribble(path_for(path), HEADER_SIZE + 1 * ENTRY_SIZE + 100)
    _scribble(path_for(path), HEADER_SIZE + 2 * ENTRY_SIZE + 40)
    with running(path, now=3) as a:
        assert a.records.get("d2") is None
        d1 = a.records.get("d1")
        assert isinstance(d1, Served)
        assert d1.returned == 0
        assert isinstance(a.records.get("r1"), Served)


def test_an_entry_written_without_its_counters_is_erased(tmp_path: Path) -> None:
    """Killed between the record and the journal store: the request was neither counted nor answered."""
    path = tmp_path / "agent.journal"
    with running(path) as a:
        a.deduct("b1", "d1", 30, now=1)
        seq = a.usage("b1").seq
        record = Served("deduct", "b1", "deduct|b1|5", Answer("OK", 5), 2)
        a.log.write("d2", record, seq + 1)  # the kill comes before the journal's write
    with running(path, now=3) as a:
        assert a.records.get("d2") is None
        assert isinstance(a.records.get("d1"), Served)
        assert answer(a.deduct("b1", "d3", 6, now=4)) == ("OK", 6)
        assert a.usage("b1").seq == seq + 1
    with running(path, now=5) as a:  # the counters reached that seq: the entry must stay gone
        assert a.records.get("d2") is None
        assert answer(a.deduct("b1", "d2", 6, now=6)) == ("OK", 6)  # new, not a CONFLICT


def test_records_and_counters_survive_sigkill_together(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "serving"
            with (
                Journal(tmp_path / "other.journal") as j,
                pytest.raises(RecordLogLocked, match=f"pid {writer.pid}"),
            ):
                RecordLog(path_for(path), j)
            assert writer.stdout.readline().strip() == "a while"
            os.kill(writer.pid, signal.SIGKILL)  # in the middle of its loop
            assert writer.wait(10) == -signal.SIGKILL
        finally:
            writer.kill()
    with Journal(path) as j, RecordLog(path_for(path), j, capacity=1 << 20) as records:
        a = Agent(j, record_log=records)
        served = [r for _, r in a.records._by_id.items() if isinstance(r, Served)]
        assert len(served) > 1000
        deducted = sum(r.answer.amount for r in served if r.kind == "deduct")
        returned = sum(r.answer.amount for r in served if r.kind == "return")
        assert a.usage("b1").consumed == deducted
        assert a.usage("b1").returned == returned


# Deducts (and refunds one unit of every seventh) without end, then gets killed.
WRITER = textwrap.dedent(
    """
    import sys
    from region_agent.core.agent import Agent
    from region_agent.storage.journal import Journal
    from region_agent.storage.record_log import RecordLog, path_for
    from quota_rules.usage import Usage
    from region_agent.core.slices import Holding
    j = Journal(sys.argv[1])
    log = RecordLog(path_for(sys.argv[1]), j, capacity=1 << 20)
    a = Agent(j, record_log=log)
    a.adopt(Holding("b1", 1, 10**15, Usage(), 10**12), sent_at=0)
    print("serving", flush=True)
    i = 0
    while True:
        i += 1
        amount = i % 50 + 1
        a.deduct("b1", f"d{i}", amount, now=1)
        if amount % 7 == 0:
            a.return_("b1", f"r{i}", f"d{i}", 1, now=1)
        if i == 20_000:
            print("a while", flush=True)
    """
)


def test_a_second_open_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with (
        Journal(path) as j,
        RecordLog(path_for(path), j),
        pytest.raises(RecordLogLocked, match="in use by another agent"),
    ):
        RecordLog(path_for(path), j)
    with Journal(path) as j, RecordLog(path_for(path), j) as again:
        assert again.load() == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a record log, just some text\n" * 10, "not a region agent record log"),
        (b"QAGRECS1" + b"\x00" * 10, "not a region agent record log"),
        (b"QAGRECS1" + (2).to_bytes(4, "little") + bytes(300), "format 2/0"),
        (
            b"QAGRECS1"
            + (1).to_bytes(4, "little")
            + (256).to_bytes(4, "little")
            + (9).to_bytes(4, "little")
            + bytes(300),
            "truncated",
        ),
    ],
)
def test_a_foreign_or_damaged_file_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "agent.journal"
    path_for(path).write_bytes(content)
    before = path_for(path).read_bytes()
    with Journal(path) as j, pytest.raises(RecordLogError, match=message):
        RecordLog(path_for(path), j)
    assert path_for(path).read_bytes() == before


def test_a_record_log_of_another_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path) as a:
        a.deduct("b1", "d1", 30, now=1)
    path.unlink()  # a new journal: its slots are not the ones the records name
    with Journal(path) as j, pytest.raises(RecordLogError, match="belongs to another journal"):
        RecordLog(path_for(path), j)


def test_a_larger_capacity_grows_the_ring_and_a_smaller_one_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path, capacity=4) as a:
        for i in range(6):
            a.deduct("b1", f"d{i}", 1, now=i)
    with running(path, capacity=8, now=10) as a:
        assert a.records.ids() == ["d2", "d3", "d4", "d5"]
        for i in range(6, 10):
            a.deduct("b1", f"d{i}", 1, now=10 + i)
    assert path_for(path).stat().st_size == HEADER_SIZE + 8 * ENTRY_SIZE
    with running(path, capacity=2, now=50) as a:
        assert a.records.ids() == [f"d{i}" for i in range(2, 10)]
        assert a.log.capacity == 8  # type: ignore[attr-defined]
        a.deduct("b1", "d10", 1, now=60)  # full: overwrites the oldest, d2
    assert path_for(path).stat().st_size == HEADER_SIZE + 8 * ENTRY_SIZE
    with running(path, capacity=8, now=70) as a:
        assert a.records.ids() == [f"d{i}" for i in range(3, 11)]


def test_a_forwarded_binding_survives_but_not_its_answer(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with running(path) as a:
        assert isinstance(a.deduct("b2", "f1", 5, now=1), Forward)  # b2 not held yet: to the center
        assert a.remember("f1", Answer("OK", 5))
    with running(path, now=2) as a:
        a.adopt(holding("b2", balance=100), sent_at=2)
        r = a.records.get("f1")
        assert isinstance(r, Forwarded)
        assert r.answer is None
        # The slice could cover it, but the center may have applied it: the retry goes there.
        retry = a.deduct("b2", "f1", 5, now=3)
        assert isinstance(retry, Forward)
        assert retry.reason == "retry"
        assert a.usage("b2") == Usage()
        assert answer(a.deduct("b2", "f1", 6, now=3))[0] == "CONFLICT"


def _scribble(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff\xfe\xfd")
