"""What the load-test users counted, per process, and how the check adds the processes up.

Each Locust process that runs users keeps one `Tally` and writes it as JSON into the run's
tally directory when its users stop. Nothing here imports Locust or gevent, so the check (and
the tests) can read tallies in a plain process.

Amounts are integers in minor units. Times are `time.monotonic()` seconds: comparable between
processes of one host only, which is why every tally names its host.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Unknown:
    """A call whose effect is not known: it failed with a gRPC error or was cut off by the stop.

    The check re-sends it (same id, same content, same target): exactly-once makes the answer
    say whether it took effect.
    """

    kind: str  # "Deduct", "Return" or "Confirm"
    target: str
    budget_id: str
    request_id: str
    amount: int
    sent: float
    deduction_id: str = ""  # Return: the deduction refunded


@dataclass(slots=True)
class Tally:
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    budget_id: str = ""
    # method -> result code name (or "grpc:STATUS") -> calls
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    # target label -> calls sent there
    targets: Counter[str] = field(default_factory=Counter)
    # Effects the users saw confirmed by an OK answer.
    deducted: int = 0
    confirmed: int = 0
    returned: int = 0
    duplicates_sent: int = 0
    duplicates_exists: int = 0
    # Repeats not answered EXISTS with the original amount.
    mismatches: list[str] = field(default_factory=list)
    # Answers that contradict what the user knows (a code the call cannot get, another amount).
    unexpected: list[str] = field(default_factory=list)
    # Scarce scenarios only: (sent, amount) of every OK deduction, and per refused amount the
    # earliest moment a refusal of it was answered.
    ok_deductions: list[tuple[float, int]] = field(default_factory=list)
    earliest_refusal: dict[int, float] = field(default_factory=dict)
    # Refusals that named holders the center could not reach (not false refusals by contract).
    refusals_unreachable: int = 0
    unknown: list[Unknown] = field(default_factory=list)
    # Scenarios with phases: (when it was answered, latency s, OK) of every deduction.
    trace: list[tuple[float, float, bool]] = field(default_factory=list)

    def count(self, method: str, code: str, target: str) -> None:
        self.codes.setdefault(method, Counter())[code] += 1
        self.targets[target] += 1

    def refused(self, amount: int, answered: float) -> None:
        first = self.earliest_refusal.get(amount)
        if first is None or answered < first:
            self.earliest_refusal[amount] = answered

    @property
    def calls(self) -> int:
        return sum(sum(c.values()) for c in self.codes.values())

    def clear(self) -> None:
        """Start counting afresh: a web UI session runs one test after another in one process."""
        fresh = Tally()
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def merge(self, other: Tally) -> None:
        if self.budget_id and other.budget_id and self.budget_id != other.budget_id:
            raise ValueError(f"tallies of different budgets: {self.budget_id!r} and {other.budget_id!r}")
        self.budget_id = self.budget_id or other.budget_id
        for method, codes in other.codes.items():
            self.codes.setdefault(method, Counter()).update(codes)
        self.targets.update(other.targets)
        self.deducted += other.deducted
        self.confirmed += other.confirmed
        self.returned += other.returned
        self.duplicates_sent += other.duplicates_sent
        self.duplicates_exists += other.duplicates_exists
        self.mismatches += other.mismatches
        self.unexpected += other.unexpected
        self.ok_deductions += other.ok_deductions
        for amount, answered in other.earliest_refusal.items():
            self.refused(amount, answered)
        self.refusals_unreachable += other.refusals_unreachable
        self.unknown += other.unknown
        self.trace += other.trace

    def to_json(self) -> dict[str, Any]:
        # Not asdict: it would rebuild the Counters from (key, value) pairs.
        return {
            "host": self.host,
            "pid": self.pid,
            "budget_id": self.budget_id,
            "codes": {method: dict(codes) for method, codes in self.codes.items()},
            "targets": dict(self.targets),
            "deducted": self.deducted,
            "confirmed": self.confirmed,
            "returned": self.returned,
            "duplicates_sent": self.duplicates_sent,
            "duplicates_exists": self.duplicates_exists,
            "mismatches": self.mismatches,
            "unexpected": self.unexpected,
            "ok_deductions": self.ok_deductions,
            "earliest_refusal": {str(k): v for k, v in self.earliest_refusal.items()},
            "refusals_unreachable": self.refusals_unreachable,
            "unknown": [asdict(u) for u in self.unknown],
            "trace": self.trace,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        return cls(
            host=str(data["host"]),
            pid=int(data["pid"]),
            budget_id=str(data["budget_id"]),
            codes={m: Counter({k: int(v) for k, v in c.items()}) for m, c in data["codes"].items()},
            targets=Counter({k: int(v) for k, v in data["targets"].items()}),
            deducted=int(data["deducted"]),
            confirmed=int(data["confirmed"]),
            returned=int(data["returned"]),
            duplicates_sent=int(data["duplicates_sent"]),
            duplicates_exists=int(data["duplicates_exists"]),
            mismatches=[str(m) for m in data["mismatches"]],
            unexpected=[str(m) for m in data["unexpected"]],
            ok_deductions=[(float(t), int(a)) for t, a in data["ok_deductions"]],
            earliest_refusal={int(k): float(v) for k, v in data["earliest_refusal"].items()},
            refusals_unreachable=int(data["refusals_unreachable"]),
            unknown=[Unknown(**u) for u in data["unknown"]],
            trace=[(float(t), float(s), bool(ok)) for t, s, ok in data.get("trace", [])],
        )

    def write(self, directory: Path) -> Path:
        """Write this tally as ``<host>-<pid>.json`` (atomically: a reader never sees half a file)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.host}-{self.pid}.json"
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.to_json()))
        partial.replace(path)
        return path


def read_all(directory: Path) -> tuple[Tally, int]:
    """The sum of every tally in `directory`, and how many files it was made of."""
    total = Tally(host="", pid=0)
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    hosts = set()
    for path in files:
        part = Tally.from_json(json.loads(path.read_text()))
        hosts.add(part.host)
        total.merge(part)
    total.host = ",".join(sorted(hosts))
    return total, len(files)
