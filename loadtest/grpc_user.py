"""A Locust user that calls the `Quota` service over gRPC and reports every call to Locust.

Locust runs users as gevent greenlets. The synchronous `grpc` client cooperates with gevent only
after `grpc.experimental.gevent.init_gevent()`, called here at import, after Locust's own
monkey-patching and before any channel exists (Locust's gRPC example does the same). Channels are
made once per process and target and shared by all users of the process.

Every call fires Locust's `request` event (request_type "grpc", name = the method, plus the
target's label when there are several targets). Business refusals (INSUFFICIENT, EXPIRED, ...)
are successes for Locust; a gRPC error, an answer that contradicts what the user knows (an
unexpected code, an OK for another amount) and a repeated request not answered EXISTS with the
original amount are failures. Every outcome is also counted in the process's `Tally`, which is
written to the tally directory when the users stop.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from google.protobuf.message import Message
from locust import User, events
from locust.env import Environment
from locust.runners import MasterRunner

from loadtest.tally import Tally, Unknown
from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc

grpc_gevent.init_gevent()

log = logging.getLogger(__name__)

OK = pb.RESULT_CODE_OK
INSUFFICIENT = pb.RESULT_CODE_INSUFFICIENT
EXISTS = pb.RESULT_CODE_EXISTS

# The one tally of this process (all its users add to it).
TALLY = Tally()

_stubs: dict[str, quota_pb2_grpc.QuotaStub] = {}


def stub(target: str) -> quota_pb2_grpc.QuotaStub:
    """The process's stub for `target`, on a channel made at first use and kept."""
    found = _stubs.get(target)
    if found is None:
        found = _stubs[target] = quota_pb2_grpc.QuotaStub(grpc.insecure_channel(target))
    return found


def code_name(code: int) -> str:
    return (
        pb.ResultCode.Name(code).removeprefix("RESULT_CODE_") if code in pb.ResultCode.values() else str(code)
    )


class Contradiction(Exception):
    """An answer that contradicts what the user knows; a failure for Locust."""


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    label: str


@dataclass(slots=True)
class Deduction:
    """An OK deduction this user made: enough to repeat it or refund part of it."""

    target: Target
    request_id: str
    amount: int
    refundable: int


@dataclass(frozen=True, slots=True)
class Refund:
    target: Target
    request_id: str
    deduction_id: str
    amount: int


def new_id() -> str:
    return uuid.uuid4().hex


class QuotaUser(User):
    """Base of the scenario users: targets, budget and options come from the command line."""

    abstract = True
    # Set by the scenario's on_start from the parsed options.
    targets: list[Target]
    weights: list[int] | None = None
    budget_id: str = ""
    duplicate_fraction: float = 0.0
    max_amount: int = 1
    call_timeout: float = 10.0
    record_times: bool = False
    record_phases: bool = False
    # How many earlier requests a user remembers for repeats and refunds.
    memory = 200

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.deductions: list[Deduction] = []
        self.refunds: list[Refund] = []

    # ----------------------------------------------------------------- calls

    def pick(self) -> Target:
        return random.choices(self.targets, weights=self.weights)[0]

    def deduct(self, amount: int) -> int:
        """Deduct `amount` somewhere (or, for a share of calls, repeat an earlier deduction)."""
        if self.deductions and random.random() < self.duplicate_fraction:
            return self.repeat_deduction(random.choice(self.deductions))
        target = self.pick()
        rid = new_id()
        sent = time.monotonic()
        unknown = Unknown("Deduct", target.address, self.budget_id, rid, amount, sent)
        request = pb.DeductRequest(budget_id=self.budget_id, request_id=rid, amount=amount)
        r = self.call("Deduct", target, request, {OK, INSUFFICIENT}, unknown)
        if self.record_phases:
            answered = time.monotonic()
            TALLY.trace.append((answered, answered - sent, r is not None and r.code == OK))
        if r is None:
            return 0
        if r.code == OK:
            if r.amount != amount:
                self.contradiction("Deduct", target, f"OK for {r.amount}, asked {amount} ({rid})")
            TALLY.deducted += amount
            if self.record_times:
                TALLY.ok_deductions.append((sent, amount))
            self.remember(self.deductions, Deduction(target, rid, amount, amount))
        elif r.code == INSUFFICIENT:
            if r.unreachable:
                TALLY.refusals_unreachable += 1
            elif self.record_times:
                TALLY.refused(amount, time.monotonic())
        return int(r.code)

    def repeat_deduction(self, d: Deduction) -> int:
        request = pb.DeductRequest(budget_id=self.budget_id, request_id=d.request_id, amount=d.amount)
        TALLY.duplicates_sent += 1
        r = self.call("Deduct", d.target, request, {EXISTS}, None, repeat=True)
        if r is not None and r.code == EXISTS:
            self.check_repeat("Deduct", d.target, d.request_id, d.amount, r.amount)
        return EXISTS

    def refund(self) -> None:
        """Return part of an earlier deduction (or, for a share of calls, repeat an earlier return)."""
        if self.refunds and random.random() < self.duplicate_fraction:
            f = random.choice(self.refunds)
            request = pb.ReturnRequest(
                budget_id=self.budget_id,
                request_id=f.request_id,
                deduction_id=f.deduction_id,
                amount=f.amount,
            )
            TALLY.duplicates_sent += 1
            r = self.call("Return", f.target, request, {EXISTS}, None, repeat=True)
            if r is not None and r.code == EXISTS:
                self.check_repeat("Return", f.target, f.request_id, f.amount, r.amount)
            return
        open_ = [d for d in self.deductions if d.refundable > 0]
        if not open_:
            self.deduct(random.randint(1, self.max_amount))
            return
        d = random.choice(open_)
        amount = random.randint(1, d.refundable)
        rid = new_id()
        unknown = Unknown(
            "Return", d.target.address, self.budget_id, rid, amount, time.monotonic(), d.request_id
        )
        request = pb.ReturnRequest(
            budget_id=self.budget_id, request_id=rid, deduction_id=d.request_id, amount=amount
        )
        # Refunding what is refundable: the refund is owed, so anything but OK contradicts.
        r = self.call("Return", d.target, request, {OK}, unknown)
        if r is not None and r.code == OK:
            d.refundable -= amount
            TALLY.returned += amount
            self.remember(self.refunds, Refund(d.target, rid, d.request_id, amount))

    def reserve_and_settle(self, ttl_ms: int = 60_000) -> None:
        """Reserve, then confirm part of it (nine times in ten) or cancel it."""
        target = self.pick()
        amount = random.randint(1, self.max_amount)
        rid = new_id()
        request = pb.ReserveRequest(budget_id=self.budget_id, request_id=rid, amount=amount, ttl_ms=ttl_ms)
        r = self.call("Reserve", target, request, {OK, INSUFFICIENT}, None)
        if r is None or r.code != OK:
            return
        if random.random() < 0.1:
            cancel = pb.CancelRequest(budget_id=self.budget_id, reservation_id=rid)
            self.call("Cancel", target, cancel, {OK}, None)
            return
        take = random.randint(1, amount)
        unknown = Unknown("Confirm", target.address, self.budget_id, rid, take, time.monotonic())
        confirm = pb.ConfirmRequest(budget_id=self.budget_id, reservation_id=rid, amount=take)
        c = self.call("Confirm", target, confirm, {OK, pb.RESULT_CODE_EXPIRED}, unknown)
        if c is not None and c.code == OK:
            TALLY.confirmed += take

    def balance(self) -> None:
        self.call("GetBalance", self.pick(), pb.GetBalanceRequest(budget_id=self.budget_id), set(), None)

    # ------------------------------------------------------------- plumbing

    def remember(self, items: list[Any], item: object) -> None:
        items.append(item)
        if len(items) > self.memory:
            del items[0]

    def check_repeat(self, method: str, target: Target, rid: str, amount: int, answered: int) -> None:
        if answered == amount:
            TALLY.duplicates_exists += 1
            return
        note = f"{method} {rid} at {target.label}: repeat answered EXISTS for {answered}, original {amount}"
        TALLY.mismatches.append(note)
        self.fire(method, target, 0, 0, None, Contradiction(note))

    def contradiction(self, method: str, target: Target, note: str) -> None:
        TALLY.unexpected.append(f"{method} at {target.label}: {note}")
        self.fire(method, target, 0, 0, None, Contradiction(note))

    def call(
        self,
        method: str,
        target: Target,
        request: Message,
        expected: Collection[int],
        unknown: Unknown | None,
        *,
        repeat: bool = False,
    ) -> Any:
        """Send one call, report it to Locust and the tally; None after a gRPC error.

        `expected` lists the result codes that are business outcomes (empty: the response has
        none); any other code is a failure. A repeat that is not answered EXISTS is a mismatch.
        `unknown` describes the call's effect for the check when the answer never comes.
        """
        start = time.perf_counter()
        try:
            response = getattr(stub(target.address), method)(request, timeout=self.call_timeout)
        except grpc.RpcError as exc:
            # The raised error is also a grpc.Call, which the stubs cannot express.
            code_of = getattr(exc, "code", None)
            status = code_of().name if callable(code_of) else "UNKNOWN"
            TALLY.count(method, f"grpc:{status}", target.label)
            if unknown is not None:
                TALLY.unknown.append(unknown)
            self.fire(method, target, _ms(start), 0, None, exc)
            return None
        except BaseException:
            # The stop cut the call off (GreenletExit): its effect is unknown.
            if unknown is not None:
                TALLY.unknown.append(unknown)
            raise
        elapsed = _ms(start)
        error: Exception | None = None
        if expected or repeat:
            code = response.code
            TALLY.count(method, code_name(code), target.label)
            if repeat and code != EXISTS:
                note = f"{method} repeat at {target.label} answered {code_name(code)}: {response.message}"
                TALLY.mismatches.append(note)
                error = Contradiction(note)
            elif not repeat and code not in expected:
                note = f"{method} at {target.label} answered {code_name(code)}: {response.message}"
                TALLY.unexpected.append(note)
                error = Contradiction(note)
        else:
            TALLY.count(method, "answered", target.label)
        self.fire(method, target, elapsed, response.ByteSize(), response, error)
        return response

    def fire(
        self, method: str, target: Target, ms: float, length: int, response: Any, error: BaseException | None
    ) -> None:
        name = method if len(self.targets) == 1 else f"{method} @{target.label}"
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=ms,
            response_length=length,
            response=response,
            context={},
            exception=error,
        )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def tally_dir(environment: Environment) -> Path | None:
    options = environment.parsed_options
    value = getattr(options, "tally_dir", "") if options is not None else ""
    return Path(value) if value else None


def write_tally(environment: Environment, **_: Any) -> None:
    """Write this process's tally once its users have stopped (the master runs none)."""
    if isinstance(environment.runner, MasterRunner) or TALLY.calls == 0:
        return
    directory = tally_dir(environment)
    if directory is None:
        log.warning("no --tally-dir: the users' counts are not written (the check needs them)")
        return
    TALLY.write(directory)


# Locust's EventHook.add_listener is untyped.
events.test_stop.add_listener(write_tally)  # type: ignore[no-untyped-call]
events.quitting.add_listener(write_tally)  # type: ignore[no-untyped-call]
