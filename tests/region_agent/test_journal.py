"""The memory-mapped journal: counters that survive SIGKILL, one process at a time, damage refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quota_rules.usage import Usage
from region_agent.core.agent import Agent
from region_agent.storage.journal import (
    _BLOCK_A,
    _BLOCK_B,
    _HEADER,
    SLOT_SIZE,
    Journal,
    JournalError,
    JournalLocked,
)
from tests.helpers.holdings import holding

# Writes counters for 50 budgets, 40 updates each, then says so and waits to be killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from region_agent.storage.journal import Journal
    from quota_rules.usage import Usage
    j = Journal(sys.argv[1], initial_slots=4)
    for step in range(1, 41):
        for b in range(50):
            j.write(f"budget-{b}", Usage(consumed=step * (b + 1), returned=step, reserved=b, released=step * 2, seq=step))
    print("written", flush=True)
    time.sleep(600)
    """
)


def expected(b: int) -> Usage:
    return Usage(consumed=40 * (b + 1), returned=40, reserved=b, released=80, seq=40)


def test_counters_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "written"
            with pytest.raises(JournalLocked, match=f"pid {writer.pid}"):
                Journal(path)
            os.kill(writer.pid, signal.SIGKILL)
            assert writer.wait(10) == -signal.SIGKILL
        finally:
            writer.kill()
    with Journal(path) as j:
        assert j.load() == {f"budget-{b}": expected(b) for b in range(50)}


def test_a_second_open_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path), pytest.raises(JournalLocked, match="in use by another agent"):
        Journal(path)
    with Journal(path) as j:  # closed: free again
        assert j.load() == {}


def test_growth_keeps_every_budget(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path, initial_slots=2) as j:
        for b in range(100):
            j.write(f"b{b}", Usage(consumed=b, seq=1))
        j.write("b0", Usage(consumed=7, seq=2))
    with Journal(path) as j:
        loaded = j.load()
    assert loaded == {"b0": Usage(consumed=7, seq=2)} | {
        f"b{b}": Usage(consumed=b, seq=1) for b in range(1, 100)
    }
    assert path.stat().st_size == _HEADER.size + 128 * SLOT_SIZE


def test_a_torn_block_falls_back_to_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path) as j:
        j.write("b1", Usage(consumed=10, seq=1))  # block B (odd seq)
        j.write("b1", Usage(consumed=25, seq=2))  # block A
    _scribble(path, _HEADER.size + _BLOCK_A + 8)
    with Journal(path) as j:
        assert j.load() == {"b1": Usage(consumed=10, seq=1)}


def test_a_slot_with_no_valid_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path) as j:
        j.write("b1", Usage(consumed=10, seq=1))
    _scribble(path, _HEADER.size + _BLOCK_A + 8)
    _scribble(path, _HEADER.size + _BLOCK_B + 8)
    with pytest.raises(JournalError, match="no valid counters for budget b1"):
        Journal(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a journal at all, just some text\n" * 10, "not a region agent journal"),
        (b"QAGJRNL1" + b"\x00" * 10, "not a region agent journal"),
    ],
)
def test_a_foreign_file_is_refused_and_left_alone(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "agent.journal"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=message):
        Journal(path)
    assert path.read_bytes() == content


def test_a_truncated_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path, initial_slots=8) as j:
        j.write("b1", Usage(consumed=1, seq=1))
    os.truncate(path, _HEADER.size + 3 * SLOT_SIZE)
    with pytest.raises(JournalError, match="truncated"):
        Journal(path)


def test_ids_that_do_not_fit_a_slot_are_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        j.write("x" * 128, Usage(seq=1))
        with pytest.raises(JournalError):
            j.write("x" * 129, Usage(seq=1))
        assert list(j.load()) == ["x" * 128]


def test_an_agent_restarted_on_its_journal_reports_what_it_spent(tmp_path: Path) -> None:
    path = tmp_path / "agent.journal"
    with Journal(path) as j:
        a = Agent(j)
        a.adopt(holding(balance=100), sent_at=0)
        a.deduct("b1", "r1", 30, now=1)
        a.deduct("b1", "r2", 5, now=1)
        a.return_("b1", "r3", "r1", 10, now=1)
        spent = a.usage("b1")
    with Journal(path) as j:
        assert Agent(j).usage("b1") == spent == Usage(consumed=35, returned=10, seq=3)


def _scribble(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff\xfe\xfd")
