"""After a load test: read the budget back from the center and check the invariants.

    python -m loadtest.check --center HOST:PORT --budget ID --scenario NAME --tally-dir DIR

What it checks (any failure makes the exit status 1):

* **no oversell**: consumed + reserved + in doubt ≤ total;
* **no unit twice, none lost**: once the agents have reported, consumed equals what the users
  saw succeed (OK deductions + OK confirms − OK returns, summed over every Locust process).
  Calls whose answer never came (a gRPC error, the stop) are first repeated with the same id and
  content at the same target: exactly-once makes the answer say whether they took effect;
* **exactly once**: every repeated request was answered EXISTS with the original amount, and no
  call got an answer that contradicts what its user knew;
* **conservation**: the center's audit of the budget is balanced;
* scarce scenarios (flash_sale, drain) also check **the last unit is issuable**: no refusal of
  an amount that was certainly available when it was refused (from the users' timings; every
  Locust process must be on this host), then a sequential drain of whatever is left (one
  deduction of exactly that amount must succeed, one more unit must be refused) after which
  consumed must equal the total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from loadtest.catalog import SCENARIOS, Scenario
from loadtest.phases import phases as sale_phases
from loadtest.phases import table as phase_table
from loadtest.tally import Tally, Unknown, read_all
from loadtest.verdict import SurelyLeft
from quota.v1 import admin_pb2, admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota_rules.build import add_version

APPLIED = (pb.RESULT_CODE_OK, pb.RESULT_CODE_EXISTS)


@dataclass(slots=True)
class Numbers:
    """The budget as the center reports it."""

    total: int = 0
    consumed: int = 0
    reserved: int = 0
    in_doubt: int = 0
    in_flight: int = 0
    held: int = 0
    main: int = 0
    # What the budget can still issue, as the center's audit counts it.
    available: int = 0


@dataclass(slots=True)
class Result:
    scenario: str
    budget_id: str
    numbers: Numbers = field(default_factory=Numbers)
    tally: Tally = field(default_factory=Tally)
    tally_files: int = 0
    expected_consumed: int = 0
    resolved_applied: int = 0
    resolved_not_applied: int = 0
    false_refusals: list[str] = field(default_factory=list)
    left_after_run: int | None = None
    final_drain: str = ""
    audit_balanced: bool | None = None
    audit_mismatches: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Scenarios with phases: the sale's phases and targets (``loadtest.phases``), shown, not checked.
    phases: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class Center:
    """Sync stubs on one channel to the center (this process runs no gevent)."""

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.channel = grpc.insecure_channel(target)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.timeout = timeout

    def numbers(self, budget_id: str) -> Numbers:
        b = self.admin.GetBudget(admin_pb2.GetBudgetRequest(budget_id=budget_id), timeout=self.timeout).budget
        return Numbers(b.total, b.consumed, b.reserved, b.in_doubt, b.in_flight, b.held, b.main, b.available)

    def close(self) -> None:
        self.channel.close()


def check(
    center_target: str,
    budget_id: str,
    scenario: Scenario,
    tally_dir: Path,
    *,
    settle_timeout: float = 15.0,
    progress: Callable[[str], None] = lambda _: None,
    center_samples: list[tuple[float, float]] | None = None,
) -> Result:
    """Check a run; ``center_samples``: the center's Deduct count while it ran (for the phases)."""
    result = Result(scenario.name, budget_id)
    result.tally, result.tally_files = read_all(tally_dir)
    tally = result.tally
    if result.tally_files == 0:
        result.failures.append(f"no tallies in {tally_dir}: the users wrote nothing (did they run?)")
    elif tally.budget_id != budget_id:
        result.failures.append(f"the tallies are of budget {tally.budget_id!r}, not {budget_id!r}")
    center = Center(center_target)
    try:
        _resolve_unknown(result, progress)
        result.expected_consumed = tally.deducted + tally.confirmed - tally.returned
        progress("waiting for the agents' reports to reach the center")
        result.numbers = _settled(center, budget_id, result.expected_consumed, settle_timeout)
        _check_numbers(result)
        if scenario.phases and tally.trace:
            start = min(t - latency for t, latency, _ in tally.trace)
            end = max(t for t, _, _ in tally.trace)
            result.phases = sale_phases(tally.trace, center_samples or [], result.numbers.total, start, end)
        if scenario.scarce:
            _check_refusals(result)
            _final_drain(center, result, settle_timeout, progress)
        _audit(center, result)
    finally:
        center.close()
    if tally.mismatches:
        result.failures.append(
            f"{len(tally.mismatches)} repeats not answered EXISTS with the original amount"
        )
    if tally.unexpected:
        result.failures.append(f"{len(tally.unexpected)} answers contradicted what the user knew")
    return result


def _resolve_unknown(result: Result, progress: Callable[[str], None]) -> None:
    """Repeat every call whose answer never came; the answer says whether it took effect."""
    unknown = result.tally.unknown
    if not unknown:
        return
    progress(f"repeating {len(unknown)} calls whose answer never came")
    channels: dict[str, grpc.Channel] = {}
    try:
        for u in unknown:
            channel = channels.get(u.target) or channels.setdefault(u.target, grpc.insecure_channel(u.target))
            try:
                code = _repeat(quota_pb2_grpc.QuotaStub(channel), u)
            except grpc.RpcError as exc:
                result.failures.append(f"{u.kind} {u.request_id} at {u.target}: repeat failed too: {exc}")
                continue
            if code not in APPLIED:
                result.resolved_not_applied += 1
                continue
            result.resolved_applied += 1
            if u.kind == "Deduct":
                result.tally.deducted += u.amount
                result.tally.ok_deductions.append((u.sent, u.amount))
            elif u.kind == "Return":
                result.tally.returned += u.amount
            else:
                result.tally.confirmed += u.amount
    finally:
        for channel in channels.values():
            channel.close()


def _repeat(stub: quota_pb2_grpc.QuotaStub, u: Unknown) -> int:
    if u.kind == "Deduct":
        d = stub.Deduct(
            pb.DeductRequest(budget_id=u.budget_id, request_id=u.request_id, amount=u.amount), timeout=10
        )
        return int(d.code)
    if u.kind == "Return":
        r = stub.Return(
            pb.ReturnRequest(
                budget_id=u.budget_id, request_id=u.request_id, deduction_id=u.deduction_id, amount=u.amount
            ),
            timeout=10,
        )
        return int(r.code)
    c = stub.Confirm(
        pb.ConfirmRequest(budget_id=u.budget_id, reservation_id=u.request_id, amount=u.amount), timeout=10
    )
    return int(c.code)


def _settled(center: Center, budget_id: str, expected: int, timeout: float) -> Numbers:
    """The budget once consumed reaches `expected` with nothing in flight (or as it is at `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        numbers = center.numbers(budget_id)
        if (numbers.consumed == expected and numbers.in_flight == 0) or time.monotonic() > deadline:
            return numbers
        time.sleep(0.2)


def _check_numbers(result: Result) -> None:
    n = result.numbers
    if n.consumed + n.reserved + n.in_doubt > n.total:
        result.failures.append(
            f"OVERSELL: consumed {n.consumed} + reserved {n.reserved} + in doubt {n.in_doubt} > total {n.total}"
        )
    if n.consumed != result.expected_consumed:
        result.failures.append(
            f"consumed {n.consumed} but the users' OK answers add up to {result.expected_consumed} "
            f"({'units counted twice or lost' if n.in_doubt == 0 else f'{n.in_doubt} in doubt'})"
        )


def _check_refusals(result: Result) -> None:
    """Refusals of amounts that were certainly there when they were refused.

    A refusal answered at time t was decided before t, when at most the deductions sent before
    t had consumed anything: total − (their sum) was still there. Refusing at most that much is
    false. (Calls whose outcome was unknown count as sent when first sent, which only widens
    the margin.) Sound only with nothing in doubt and all clocks on one host.
    """
    tally = result.tally
    if result.numbers.in_doubt:
        result.false_refusals.append(f"(not checked: {result.numbers.in_doubt} in doubt)")
        return
    if "," in tally.host:
        result.false_refusals.append(f"(not checked: Locust processes on several hosts: {tally.host})")
        return
    surely = SurelyLeft(result.numbers.total, tally.ok_deductions)
    for amount, answered in sorted(tally.earliest_refusal.items()):
        left = surely.at(answered)
        if amount <= left:
            note = f"{amount} refused while at least {left} was left"
            result.false_refusals.append(note)
            result.failures.append(f"FALSE REFUSAL: {note}")


def _final_drain(center: Center, result: Result, timeout: float, progress: Callable[[str], None]) -> None:
    """Deduct exactly what is left (must succeed), then one more unit (must be refused)."""
    left = result.numbers.available
    result.left_after_run = left
    steps = []
    if left > 0:
        progress(f"final drain: deducting the {left} left")
        d = center.quota.Deduct(
            pb.DeductRequest(budget_id=result.budget_id, request_id=f"check-{uuid.uuid4().hex}", amount=left),
            timeout=center.timeout,
        )
        steps.append(f"deduct {left}: {_name(d.code)}")
        if d.code != pb.RESULT_CODE_OK:
            result.failures.append(
                f"FALSE REFUSAL: {left} was left, deducting it got {_name(d.code)}: {d.message}"
            )
    one = center.quota.Deduct(
        pb.DeductRequest(budget_id=result.budget_id, request_id=f"check-{uuid.uuid4().hex}", amount=1),
        timeout=center.timeout,
    )
    steps.append(f"deduct 1 more: {_name(one.code)}")
    if one.code != pb.RESULT_CODE_INSUFFICIENT:
        result.failures.append(f"after the final drain one more unit got {_name(one.code)}, not INSUFFICIENT")
    drained = result.expected_consumed + (left if left > 0 else 0)
    after = _settled(center, result.budget_id, drained, timeout)
    result.numbers = after
    if after.reserved == 0 and after.in_doubt == 0 and after.consumed != after.total:
        result.failures.append(
            f"after the final drain consumed is {after.consumed}, not the total {after.total}"
        )
    steps.append(f"consumed {after.consumed} of {after.total}")
    result.final_drain = "; ".join(steps)


def _audit(center: Center, result: Result) -> None:
    audit = center.admin.Audit(admin_pb2.AuditRequest(budget_id=result.budget_id), timeout=60)
    result.audit_balanced = bool(audit.balanced)
    for b in audit.budgets:
        result.audit_mismatches += list(b.mismatches)
    if not audit.balanced:
        result.failures.append("AUDIT MISMATCH: " + "; ".join(result.audit_mismatches or ["not balanced"]))


def _name(code: int) -> str:
    return (
        pb.ResultCode.Name(code).removeprefix("RESULT_CODE_") if code in pb.ResultCode.values() else str(code)
    )


# ------------------------------------------------------------------ report


def codes_table(tally: Tally) -> str:
    """Calls per method and answer, summed over every Locust process."""
    columns = sorted({code for codes in tally.codes.values() for code in codes})
    if not columns:
        return "  (no calls)"
    width = max(12, *(len(c) for c in columns))
    lines = ["  " + "method".ljust(12) + "".join(c.rjust(width + 1) for c in columns)]
    for method in sorted(tally.codes):
        codes = tally.codes[method]
        lines.append(
            "  " + method.ljust(12) + "".join(str(codes.get(c, 0)).rjust(width + 1) for c in columns)
        )
    return "\n".join(lines)


def summary(result: Result) -> str:
    t, n = result.tally, result.numbers
    insufficient = sum(codes.get("INSUFFICIENT", 0) for codes in t.codes.values())
    calls = sum(t.targets.values()) or 1
    split = ", ".join(f"{label} {100 * count / calls:.0f}%" for label, count in t.targets.most_common())
    lines = [
        f"answers per method (all {result.tally_files} Locust processes):",
        codes_table(t),
        f"traffic: {split or '-'}",
        "",
        f"invariants, budget {result.budget_id} ({result.scenario}):",
        f"  total            {n.total}",
        f"  consumed         {n.consumed}",
        f"  reserved         {n.reserved}",
        f"  in doubt         {n.in_doubt}",
        f"  OK sum           {result.expected_consumed} = deducted {t.deducted} + confirmed {t.confirmed}"
        f" - returned {t.returned}",
        f"  refusals         {insufficient} INSUFFICIENT ({t.refusals_unreachable} naming unreachable holders)",
        f"  duplicates       {t.duplicates_sent} sent, {t.duplicates_exists} answered EXISTS with the same"
        f" amount, {len(t.mismatches)} mismatches",
        f"  unexpected       {len(t.unexpected)}",
        f"  unknown outcome  {len(t.unknown)} (repeated: {result.resolved_applied} had taken effect,"
        f" {result.resolved_not_applied} had not)",
    ]
    if result.left_after_run is not None:
        lines.append(f"  false refusals   {', '.join(result.false_refusals) or 'none'}")
        lines.append(f"  left after run   {result.left_after_run}")
        lines.append(f"  final drain      {result.final_drain}")
    balanced = {None: "not run", True: "balanced", False: "NOT balanced"}[result.audit_balanced]
    lines.append(f"  audit            {balanced}")
    for note in (t.mismatches + t.unexpected)[:10]:
        lines.append(f"  ! {note}")
    if result.phases is not None:
        lines.append("")
        if result.phases["sold_out"]:
            lines.append(
                "phases of the sale (center calls: the center's Deduct count, sampled while it ran):"
            )
            lines.extend("  " + line for line in phase_table(result.phases))
        else:
            lines.append(f"phases: not sold out during the run ({result.phases['sold']} units sold)")
    lines.append(
        "result: PASS" if result.ok else "result: FAIL\n" + "\n".join(f"  - {f}" for f in result.failures)
    )
    return "\n".join(lines)


def to_json(result: Result) -> dict[str, Any]:
    data = asdict(result)
    data["tally"] = result.tally.to_json()
    # The per-call lists are the tallies' business; the summary keeps their sizes.
    data["tally"]["ok_deductions"] = len(result.tally.ok_deductions)
    data["tally"]["unknown"] = len(result.tally.unknown)
    data["tally"]["trace"] = len(result.tally.trace)
    data["ok"] = result.ok
    return data


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.check",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("--center", required=True, help="center gRPC host:port")
    p.add_argument("--budget", required=True, help="the budget the users spent")
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS), help="the scenario that ran")
    p.add_argument(
        "--tally-dir", required=True, type=Path, help="where the Locust processes wrote their counts"
    )
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=15.0,
        help="seconds to wait for the agents' reports to reach the center (default: 15)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = check(
            args.center,
            args.budget,
            SCENARIOS[args.scenario],
            args.tally_dir,
            settle_timeout=args.settle_timeout,
            progress=lambda line: print(f"check: {line}", file=sys.stderr),
        )
    except grpc.RpcError as exc:
        print(f"loadtest.check: the center at {args.center} failed: {exc}", file=sys.stderr)
        return 2
    print(summary(result))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(result), indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
