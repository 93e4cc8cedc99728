"""A seeded randomized test: operation sequences against the real center and a reference model.

The model is a budget in a few lines of Python: a total, what was consumed and reserved, and the
records of requests and reservations. Every answer of the center (code, amount, refundable,
released) must equal the model's, and after every step the center's numbers must equal the
model's (available = total - consumed - reserved). Refusals are checked exactly, so any false
refusal (promise 3), double effect (promise 4) or reservation ended twice (promise 6) fails the
test. Reservations here have a long TTL: expiry, which needs the clock, has its own tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from quota.v1 import admin_pb2 as apb
from quota.v1 import admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb

IDS = [f"r{i}" for i in range(12)]  # a small pool, so that ids are reused and collide
HOLDS = [f"h{i}" for i in range(8)]  # reservation ids; some collide with IDS on purpose
TTL_MS = 3_600_000  # no reservation expires during a run


@dataclass
class Model:
    total: int
    consumed: int = 0
    paused: bool = False
    claims: dict[str, str] = field(default_factory=dict)
    deductions: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> (amount, returned)
    returns: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> (amount, left after)
    # rid -> [reserved amount, state (held, confirmed, cancelled), confirmed amount]
    reservations: dict[str, list[int | str]] = field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return sum(int(r[0]) for r in self.reservations.values() if r[1] == "held")

    @property
    def available(self) -> int:
        return self.total - self.consumed - self.reserved

    def claim(self, rid: str, fingerprint: str) -> bool:
        return self.claims.setdefault(rid, fingerprint) == fingerprint

    def deduct(self, budget: str, rid: str, amount: int) -> tuple[str, int]:
        if not self.claim(rid, f"deduct|{budget}|{amount}"):
            return "CONFLICT", 0
        if rid in self.deductions:
            return "EXISTS", self.deductions[rid][0]
        if self.paused:
            return "BUDGET_PAUSED", 0
        if amount > self.available:
            return "INSUFFICIENT", 0
        self.deductions[rid] = (amount, 0)
        self.consumed += amount
        return "OK", amount

    def refund(self, budget: str, rid: str, of: str, amount: int) -> tuple[str, int, int]:
        if rid == of or not self.claim(rid, f"return|{budget}|{amount}|{of}"):
            return "CONFLICT", 0, 0
        if rid in self.returns:
            return "EXISTS", *self.returns[rid]
        if of not in self.deductions:
            return "UNKNOWN_REQUEST", 0, 0
        deducted, returned = self.deductions[of]
        if amount > deducted - returned:
            return "EXCEEDS_DEDUCTED", 0, deducted - returned
        self.deductions[of] = (deducted, returned + amount)
        self.returns[rid] = (amount, deducted - returned - amount)
        self.consumed -= amount
        return "OK", amount, deducted - returned - amount

    def reserve(self, budget: str, rid: str, amount: int) -> tuple[str, int]:
        if not self.claim(rid, f"reserve|{budget}|{amount}|{TTL_MS}"):
            return "CONFLICT", 0
        if rid in self.reservations:
            return "EXISTS", int(self.reservations[rid][0])
        if self.paused:
            return "BUDGET_PAUSED", 0
        if amount > self.available:
            return "INSUFFICIENT", 0
        self.reservations[rid] = [amount, "held", 0]
        return "OK", amount

    def confirm(self, rid: str, amount: int) -> tuple[str, int, int]:
        """(code, amount, released); paused budgets still confirm what was set aside."""
        r = self.reservations.get(rid)
        if r is None:
            return "UNKNOWN_REQUEST", 0, 0
        reserved, state, confirmed = int(r[0]), r[1], int(r[2])
        if state == "cancelled":
            return "CANCELLED", 0, 0
        if state == "confirmed":
            return ("EXISTS", amount, reserved - amount) if amount == confirmed else ("CONFLICT", 0, 0)
        if amount > reserved:
            return "EXCEEDS_DEDUCTED", 0, 0
        r[1], r[2] = "confirmed", amount
        self.consumed += amount
        self.deductions[rid] = (amount, 0)  # a confirmed reservation is refunded like a deduction
        return "OK", amount, reserved - amount

    def cancel(self, rid: str) -> tuple[str, int]:
        r = self.reservations.get(rid)
        if r is None:
            return "UNKNOWN_REQUEST", 0
        if r[1] == "confirmed":
            return "CONFIRMED", 0
        code = "EXISTS" if r[1] == "cancelled" else "OK"
        r[1] = "cancelled"
        return code, int(r[0])


def _code(value: int) -> str:
    return pb.ResultCode.Name(value).removeprefix("RESULT_CODE_")  # type: ignore[arg-type]


class BudgetMachine(RuleBasedStateMachine):
    target = ""

    def __init__(self) -> None:
        super().__init__()
        self.channel = grpc.insecure_channel(self.target)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.budget = f"m-{uuid.uuid4().hex[:10]}"
        self.prefix = uuid.uuid4().hex[:8]  # request ids are global: keep each example's own
        self.model = Model(0)
        self.top_ups = 0

    def rid(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @initialize(total=st.integers(1, 400), sub_buckets=st.integers(1, 5), max_slice=st.integers(0, 60))
    def create(self, total: int, sub_buckets: int, max_slice: int) -> None:
        policy = apb.SlicePolicy(sub_buckets=sub_buckets, max_slice=max_slice)
        r = self.admin.CreateBudget(
            apb.CreateBudgetRequest(budget_id=self.budget, unit="u", total=total, policy=policy)
        )
        assert _code(r.code) == "OK", r.message
        self.model = Model(total)

    @rule(name=st.sampled_from(IDS), amount=st.integers(1, 120))
    def deduct(self, name: str, amount: int) -> None:
        r = self.quota.Deduct(
            pb.DeductRequest(budget_id=self.budget, request_id=self.rid(name), amount=amount)
        )
        assert (_code(r.code), r.amount) == self.model.deduct(self.budget, self.rid(name), amount), r.message

    @rule(name=st.sampled_from(IDS), delta=st.integers(-2, 1))
    def deduct_near_the_rest(self, name: str, delta: int) -> None:
        """The boundary where false refusals hide: exactly what is left, or one more or less."""
        self.deduct(name, max(1, self.model.total - self.model.consumed + delta))

    @rule(name=st.sampled_from(IDS), of=st.sampled_from(IDS + HOLDS[:4]), amount=st.integers(1, 60))
    def refund(self, name: str, of: str, amount: int) -> None:
        rid, ded = self.rid(name), self.rid(of)
        r = self.quota.Return(
            pb.ReturnRequest(budget_id=self.budget, request_id=rid, deduction_id=ded, amount=amount)
        )
        expected = self.model.refund(self.budget, rid, ded, amount)
        assert (_code(r.code), r.amount, r.refundable) == expected, r.message

    @rule(name=st.sampled_from(HOLDS + IDS[:3]), amount=st.integers(1, 120))
    def reserve(self, name: str, amount: int) -> None:
        rid = self.rid(name)
        r = self.quota.Reserve(
            pb.ReserveRequest(budget_id=self.budget, request_id=rid, amount=amount, ttl_ms=TTL_MS)
        )
        assert (_code(r.code), r.amount) == self.model.reserve(self.budget, rid, amount), r.message

    def _pick(self, name: str, pick: int) -> str:
        """Mostly an id the model holds a reservation under (so endings are reached), else ``name``."""
        made = sorted(self.model.reservations)
        return made[pick % len(made)] if made and pick % 5 else self.rid(name)

    @rule(name=st.sampled_from(HOLDS + IDS[:3]), pick=st.integers(0, 99), quarters=st.integers(0, 5))
    def confirm(self, name: str, pick: int, quarters: int) -> None:
        """Confirm about ``quarters``/4 of the reservation: up to all of it, or more (EXCEEDS)."""
        rid = self._pick(name, pick)
        held = self.model.reservations.get(rid)
        amount = max(1, int(held[0]) * quarters // 4) if held else 1 + quarters
        r = self.quota.Confirm(pb.ConfirmRequest(budget_id=self.budget, reservation_id=rid, amount=amount))
        assert (_code(r.code), r.amount, r.released) == self.model.confirm(rid, amount), r.message

    @rule(name=st.sampled_from(HOLDS + IDS[:3]), pick=st.integers(0, 99))
    def cancel(self, name: str, pick: int) -> None:
        rid = self._pick(name, pick)
        r = self.quota.Cancel(pb.CancelRequest(budget_id=self.budget, reservation_id=rid))
        assert (_code(r.code), r.released) == self.model.cancel(rid), r.message

    @rule(amount=st.integers(1, 100))
    def top_up(self, amount: int) -> None:
        self.top_ups += 1
        request = apb.TopUpRequest(budget_id=self.budget, request_id=f"t{self.top_ups}", amount=amount)
        assert _code(self.admin.TopUp(request).code) == "OK"
        self.model.total += amount

    @rule(pause=st.booleans())
    def pause_or_resume(self, pause: bool) -> None:
        request = apb.ChangeStateRequest(budget_id=self.budget)
        (self.admin.PauseBudget if pause else self.admin.ResumeBudget)(request)
        self.model.paused = pause

    @invariant()
    def balance_matches(self) -> None:
        if not self.model.total:
            return
        b = self.quota.GetBalance(pb.GetBalanceRequest(budget_id=self.budget))
        assert (b.total, b.consumed, b.reserved, b.available) == (
            self.model.total,
            self.model.consumed,
            self.model.reserved,
            self.model.available,
        )

    def teardown(self) -> None:
        if self.model.total:
            report = self.admin.Audit(apb.AuditRequest(budget_id=self.budget)).budgets[0]
            assert report.balanced, list(report.mismatches)
            assert (report.consumed, report.reserved) == (self.model.consumed, self.model.reserved)
        self.channel.close()


@pytest.mark.timeout(300)
def test_operation_sequences_match_the_model(center_target: str) -> None:
    BudgetMachine.target = center_target
    run_state_machine_as_test(
        BudgetMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,  # seeded: the same sequences on every run
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
