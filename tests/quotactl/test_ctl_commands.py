"""quotactl against a scripted in-process gRPC server (``fake_center``): requests, output, exit codes.

These run now, without the real center; tests/quotactl/test_ctl_integration.py covers the real one.
"""

from __future__ import annotations

import json
import os
import threading
import uuid

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2, common_pb2
from tests.helpers.fake_center import FakeCenter, Run, budget

OK = common_pb2.RESULT_CODE_OK


def only_call(center: FakeCenter, method: str) -> Message:
    calls = center.calls(method)
    assert len(calls) == 1, center.requests
    return calls[0]


# Admin ----------------------------------------------------------------------------------------


def test_create_builds_the_request(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("CreateBudget", admin_pb2.BudgetResponse(code=OK, budget=budget()))
    code, out, err = ctl(
        "--actor",
        "alice",
        "create",
        "b1",
        "--total",
        "10000",
        "--unit",
        "cent",
        "--valid-from",
        "2025-01-01T00:00:00Z",
        "--valid-until",
        "2025-02-01",
        "--sub-buckets",
        "8",
        "--min-slice",
        "10",
        "--max-slice",
        "500",
        "--strategy",
        "static",
        "--reason",
        "Q1 launch",
    )
    assert (code, err) == (0, "")
    assert out.startswith("result:      OK\nid:          b1\n")
    request = only_call(fake_center, "CreateBudget")
    assert request == admin_pb2.CreateBudgetRequest(
        budget_id="b1",
        unit="cent",
        total=10_000,
        valid_from=Timestamp(seconds=1_735_689_600),
        valid_until=Timestamp(seconds=1_738_368_000),
        policy=admin_pb2.SlicePolicy(
            strategy=common_pb2.STRATEGY_STATIC, sub_buckets=8, min_slice=10, max_slice=500
        ),
        actor="alice",
        reason="Q1 launch",
    )


def test_create_defaults(fake_center: FakeCenter, ctl: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "bob")
    fake_center.reply("CreateBudget", admin_pb2.BudgetResponse(code=OK, budget=budget()))
    assert ctl("create", "b1", "--total", "5")[0] == 0
    request = only_call(fake_center, "CreateBudget")
    assert isinstance(request, admin_pb2.CreateBudgetRequest)
    assert request.unit == "unit"
    assert request.actor == "bob"
    assert not request.HasField("valid_from")
    assert not request.HasField("valid_until")
    assert request.policy == admin_pb2.SlicePolicy()  # server defaults


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-slice", "10", "--max-slice", "5"], "--min-slice must not exceed --max-slice"),
        (
            ["--valid-from", "2025-02-01", "--valid-until", "2025-01-01"],
            "--valid-from must be before --valid-until",
        ),
        (
            ["--valid-from", "2025-01-01", "--valid-until", "2025-01-01"],
            "--valid-from must be before --valid-until",
        ),
    ],
)
def test_create_checks_option_pairs(fake_center: FakeCenter, ctl: Run, argv: list[str], message: str) -> None:
    code, out, err = ctl("create", "b1", "--total", "5", *argv)
    assert (code, out) == (2, "")
    assert err == f"quotactl: error: {message}\n"
    assert fake_center.requests == []


@pytest.mark.parametrize(
    ("result", "exit_code"),
    [
        (common_pb2.RESULT_CODE_OK, 0),
        (common_pb2.RESULT_CODE_EXISTS, 0),
        (common_pb2.RESULT_CODE_CONFLICT, 1),
        (common_pb2.RESULT_CODE_BUDGET_CLOSED, 1),
        (common_pb2.RESULT_CODE_UNSPECIFIED, 1),  # a write must say what happened
    ],
)
def test_top_up_exit_code_follows_the_result(
    fake_center: FakeCenter, ctl: Run, result: common_pb2.ResultCode, exit_code: int
) -> None:
    fake_center.reply("TopUp", admin_pb2.BudgetResponse(code=result, budget=budget()))
    code, out, _ = ctl("--json", "top-up", "b1", "500", "--request-id", "t1", "--reason", "more")
    assert code == exit_code
    assert json.loads(out)["code"] == common_pb2.ResultCode.Name(result).removeprefix("RESULT_CODE_")
    assert only_call(fake_center, "TopUp") == admin_pb2.TopUpRequest(
        budget_id="b1", request_id="t1", amount=500, actor=_actor(), reason="more"
    )


def _actor() -> str:
    return os.environ.get("USER") or "quotactl"


def test_top_up_requires_a_request_id(fake_center: FakeCenter, ctl: Run) -> None:
    code, _, err = ctl("top-up", "b1", "500")
    assert code == 2
    assert "--request-id" in err
    assert fake_center.requests == []


@pytest.mark.parametrize(
    ("command", "method"), [("pause", "PauseBudget"), ("resume", "ResumeBudget"), ("close", "CloseBudget")]
)
def test_state_changes(fake_center: FakeCenter, ctl: Run, command: str, method: str) -> None:
    fake_center.reply(
        method, admin_pb2.BudgetResponse(code=OK, budget=budget(state=common_pb2.BUDGET_STATE_PAUSED))
    )
    code, out, _ = ctl("--actor", "ops", command, "b1", "--reason", "incident 42")
    assert code == 0
    assert "state:       PAUSED" in out.splitlines()
    assert only_call(fake_center, method) == admin_pb2.ChangeStateRequest(
        budget_id="b1", actor="ops", reason="incident 42"
    )


def test_get_text_and_json(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("GetBudget", admin_pb2.BudgetResponse(code=OK, budget=budget()))
    code, out, _ = ctl("get", "b1")
    assert code == 0
    assert out.startswith("id:          b1\n")  # a read shows no "result: OK" line
    for line in ["consumed:    2500", "available:   7500", "state:       ACTIVE", "mode:        NORMAL"]:
        assert line in out.splitlines()

    code, out, _ = ctl("get", "b1", "--json")  # global options may follow the command
    assert code == 0
    assert out.count("\n") == 1  # one JSON object, one line
    data = json.loads(out)
    assert data["code"] == "OK"
    assert data["budget"]["consumed"] == 2500
    assert data["budget"]["available"] == 7500
    assert data["budget"]["state"] == "ACTIVE"


def test_get_tolerates_an_unset_result_code(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("GetBudget", admin_pb2.BudgetResponse(budget=budget()))
    code, out, _ = ctl("get", "b1")
    assert code == 0
    assert "result:" not in out


def test_list_follows_page_tokens(fake_center: FakeCenter, ctl: Run) -> None:
    pages = {
        "": admin_pb2.ListBudgetsResponse(
            budgets=[budget(budget_id="a"), budget(budget_id="b")], next_page_token="p2"
        ),
        "p2": admin_pb2.ListBudgetsResponse(budgets=[], next_page_token="p3"),  # an empty page is not the end
        "p3": admin_pb2.ListBudgetsResponse(budgets=[budget(budget_id="c")]),
    }

    def handler(request: Message, _context: grpc.ServicerContext) -> Message:
        assert isinstance(request, admin_pb2.ListBudgetsRequest)
        return pages[request.page_token]

    fake_center.handlers["ListBudgets"] = handler
    code, out, _ = ctl("--json", "list", "--state", "paused")
    assert code == 0
    data = json.loads(out)
    assert [b["budget_id"] for b in data["budgets"]] == ["a", "b", "c"]
    assert data["next_page_token"] == ""
    requests = fake_center.calls("ListBudgets")
    assert [r.page_token for r in requests] == ["", "p2", "p3"]  # type: ignore[attr-defined]
    assert {r.state for r in requests} == {common_pb2.BUDGET_STATE_PAUSED}  # type: ignore[attr-defined]
    assert {r.page_size for r in requests} == {0}  # type: ignore[attr-defined]

    code, out, _ = ctl("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "BUDGET",
        "STATE",
        "MODE",
        "UNIT",
        "TOTAL",
        "CONSUMED",
        "RESERVED",
        "IN",
        "DOUBT",
        "AVAILABLE",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["a", "b", "c"]


def test_list_limit(fake_center: FakeCenter, ctl: Run) -> None:
    def handler(request: Message, _context: grpc.ServicerContext) -> Message:
        assert isinstance(request, admin_pb2.ListBudgetsRequest)
        start = int(request.page_token or "0")
        ids = [f"b{i}" for i in range(start, min(start + request.page_size, 10))]
        token = str(start + len(ids)) if start + len(ids) < 10 else ""
        return admin_pb2.ListBudgetsResponse(
            budgets=[budget(budget_id=i) for i in ids], next_page_token=token
        )

    fake_center.handlers["ListBudgets"] = handler
    code, out, _ = ctl("--json", "list", "--limit", "3")
    assert code == 0
    data = json.loads(out)
    assert [b["budget_id"] for b in data["budgets"]] == ["b0", "b1", "b2"]
    assert data["next_page_token"] == "3"  # where the listing was cut
    assert [r.page_size for r in fake_center.calls("ListBudgets")] == [3]  # type: ignore[attr-defined]

    code, out, _ = ctl("list", "--limit", "3")
    assert out.rstrip().endswith("(more budgets exist: raise --limit to see them)")


def test_list_stops_on_a_repeated_page_token(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "ListBudgets", admin_pb2.ListBudgetsResponse(budgets=[budget()], next_page_token="same")
    )
    code, out, err = ctl("list")
    assert (code, out) == (6, "")
    assert err == "quotactl: error: the server repeated page token 'same'; listing aborted\n"


def _audit(balanced: bool, **overrides: object) -> admin_pb2.BudgetAudit:
    fields: dict[str, object] = {
        "budget_id": "b1",
        "total": 10_000,
        "main": 6_000,
        "held": 1_500,
        "consumed": 2_500,
        "balanced": balanced,
    }
    fields.update(overrides)
    return admin_pb2.BudgetAudit(**fields)  # type: ignore[arg-type]


def test_audit_balanced(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("Audit", admin_pb2.AuditResponse(budgets=[_audit(True)], balanced=True))
    code, out, _ = ctl("audit", "b1")
    assert code == 0
    assert (
        "  total 10000 = main 6000 + held 1500 + in flight 0 + reserved 0 + in doubt 0 + consumed 2500  BALANCED"
        in out.splitlines()
    )
    assert only_call(fake_center, "Audit") == admin_pb2.AuditRequest(budget_id="b1")


def test_audit_everything_and_mismatch(fake_center: FakeCenter, ctl: Run) -> None:
    response = admin_pb2.AuditResponse(
        budgets=[
            _audit(True),
            _audit(False, budget_id="b2", mismatches=["sub:1 observed 10 != ledgered 20"]),
        ],
        balanced=False,
    )
    fake_center.reply("Audit", response)
    code, out, _ = ctl("audit")
    assert code == 5
    assert "  mismatch: sub:1 observed 10 != ledgered 20" in out.splitlines()
    assert only_call(fake_center, "Audit") == admin_pb2.AuditRequest(page_size=500)  # page by page

    code, out, _ = ctl("--json", "audit")
    assert code == 5
    data = json.loads(out)
    assert data["balanced"] is False
    assert [b["balanced"] for b in data["budgets"]] == [True, False]
    assert data["budgets"][0]["total"] == 10_000


def test_audit_identity_that_does_not_add_up_is_a_mismatch(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("Audit", admin_pb2.AuditResponse(budgets=[_audit(True, consumed=2_499)], balanced=True))
    assert ctl("audit", "b1")[0] == 5


def test_settle(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Settle",
        admin_pb2.SettleResponse(
            code=OK, budget_id="b1", holder="sub:3", settled=30, consumed=0, returned_to_main=30
        ),
    )
    code, out, _ = ctl(
        "--json", "--actor", "ops", "settle", "b1", "sub:3", "--consumed", "0", "--reason", "crash"
    )
    assert code == 0
    assert json.loads(out) == {
        "code": "OK",
        "message": "",
        "budget_id": "b1",
        "holder": "sub:3",
        "settled": 30,
        "consumed": 0,
        "returned_to_main": 30,
        "in_doubt": 0,
        "booked": 0,
        "logged": 0,
        "log_complete": False,
        "waiting_for": [],
        "at_least": 0,
        "at_most": 0,
        "note": "",
    }
    assert only_call(fake_center, "Settle") == admin_pb2.SettleRequest(
        budget_id="b1", holder="sub:3", consumed=0, actor="ops", reason="crash"
    )


def test_settle_show_asks_for_a_dry_run_and_prints_the_bounds(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Settle",
        admin_pb2.SettleResponse(
            code=OK,
            budget_id="b1",
            holder="doubt:sub:3@1",
            in_doubt=70,
            booked=30,
            logged=30,
            waiting_for=["center ghost"],
            at_least=0,
            at_most=70,
        ),
    )
    code, out, _ = ctl("settle", "b1", "doubt:sub:3@1", "--show")
    assert code == 0
    assert "between 0 and 70" in out
    assert "incomplete (waiting for center ghost)" in out
    assert only_call(fake_center, "Settle").dry_run


def test_settle_needs_consumed_or_show(fake_center: FakeCenter, ctl: Run) -> None:
    code, _, err = ctl("settle", "b1", "sub:3")
    assert code == 2
    assert "--consumed N, or --show" in err


# Quota ----------------------------------------------------------------------------------------


def test_deduct_with_a_request_id(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Deduct",
        common_pb2.DeductResponse(
            code=common_pb2.RESULT_CODE_EXISTS, budget_id="b1", request_id="r1", amount=300
        ),
    )
    code, out, _ = ctl("--json", "deduct", "b1", "300", "--request-id", "r1")
    assert code == 0
    assert json.loads(out) == {
        "code": "EXISTS",
        "message": "",
        "budget_id": "b1",
        "request_id": "r1",
        "amount": 300,
        "unreachable": [],
    }
    assert only_call(fake_center, "Deduct") == common_pb2.DeductRequest(
        budget_id="b1", request_id="r1", amount=300
    )


def test_deduct_generates_and_prints_a_request_id(fake_center: FakeCenter, ctl: Run) -> None:
    # A center that does not echo the id: the CLI still prints the one it used.
    fake_center.reply("Deduct", common_pb2.DeductResponse(code=OK, budget_id="b1", amount=5))
    code, out, _ = ctl("deduct", "b1", "5")
    assert code == 0
    request = only_call(fake_center, "Deduct")
    assert isinstance(request, common_pb2.DeductRequest)
    assert uuid.UUID(request.request_id).version == 4
    assert f"request id: {request.request_id}" in out.splitlines()


def test_deduct_refused(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Deduct",
        common_pb2.DeductResponse(
            code=common_pb2.RESULT_CODE_INSUFFICIENT,
            message="7 available",
            budget_id="b1",
            request_id="r9",
            unreachable=[common_pb2.Holding(holder="agent:eu-1", amount=40)],
        ),
    )
    code, out, err = ctl("deduct", "b1", "50", "--request-id", "r9")
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == "result:     INSUFFICIENT"
    assert "  agent:eu-1      40  no" in out.splitlines()


def test_return(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Return",
        common_pb2.ReturnResponse(
            code=OK, budget_id="b1", request_id="ret1", deduction_id="r1", amount=100, refundable=200
        ),
    )
    code, out, _ = ctl("--json", "return", "b1", "100", "--deduction-id", "r1", "--request-id", "ret1")
    assert code == 0
    assert json.loads(out)["refundable"] == 200
    assert only_call(fake_center, "Return") == common_pb2.ReturnRequest(
        budget_id="b1", request_id="ret1", deduction_id="r1", amount=100
    )


def test_return_needs_the_deduction_id(fake_center: FakeCenter, ctl: Run) -> None:
    assert ctl("return", "b1", "100")[0] == 2
    assert fake_center.requests == []


def test_reserve_confirm_cancel(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "Reserve",
        common_pb2.ReserveResponse(code=OK, budget_id="b1", amount=50, expires_at_ms=1_735_689_600_000),
    )
    code, out, _ = ctl("--json", "reserve", "b1", "50", "--ttl-ms", "30000")
    assert code == 0
    reserve = only_call(fake_center, "Reserve")
    assert isinstance(reserve, common_pb2.ReserveRequest)
    assert (reserve.amount, reserve.ttl_ms) == (50, 30_000)
    data = json.loads(out)
    assert data["request_id"] == reserve.request_id  # the reservation id, needed to confirm or cancel
    assert data["expires_at_ms"] == 1_735_689_600_000

    fake_center.reply(
        "Confirm",
        common_pb2.ConfirmResponse(code=OK, budget_id="b1", reservation_id="res1", amount=40, released=10),
    )
    code, out, _ = ctl("confirm", "b1", "res1", "40")
    assert code == 0
    assert "released:       10" in out.splitlines()
    assert only_call(fake_center, "Confirm") == common_pb2.ConfirmRequest(
        budget_id="b1", reservation_id="res1", amount=40
    )

    fake_center.reply(
        "Cancel",
        common_pb2.CancelResponse(
            code=common_pb2.RESULT_CODE_CONFIRMED, budget_id="b1", reservation_id="res1"
        ),
    )
    code, out, _ = ctl("cancel", "b1", "res1")
    assert code == 1
    assert out.splitlines()[0] == "result:         CONFIRMED"
    assert only_call(fake_center, "Cancel") == common_pb2.CancelRequest(budget_id="b1", reservation_id="res1")


def test_reserve_default_ttl_is_the_servers(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply("Reserve", common_pb2.ReserveResponse(code=OK))
    assert ctl("reserve", "b1", "5", "--request-id", "res2")[0] == 0
    assert only_call(fake_center, "Reserve") == common_pb2.ReserveRequest(
        budget_id="b1", request_id="res2", amount=5, ttl_ms=0
    )


def test_balance(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.reply(
        "GetBalance",
        common_pb2.GetBalanceResponse(
            budget_id="b1",
            unit="cent",
            state=common_pb2.BUDGET_STATE_ACTIVE,
            total=100,
            available=40,
            consumed=60,
        ),
    )
    code, out, _ = ctl("--json", "balance", "b1")
    assert code == 0
    data = json.loads(out)
    assert (data["total"], data["available"], data["consumed"], data["state"]) == (100, 40, 60, "ACTIVE")
    assert only_call(fake_center, "GetBalance") == common_pb2.GetBalanceRequest(budget_id="b1")


# gRPC errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 2),
        (grpc.StatusCode.NOT_FOUND, 3),
        (grpc.StatusCode.UNAVAILABLE, 4),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 4),
        (grpc.StatusCode.PERMISSION_DENIED, 7),
        (grpc.StatusCode.UNAUTHENTICATED, 7),
        (grpc.StatusCode.INTERNAL, 6),
        (grpc.StatusCode.FAILED_PRECONDITION, 6),
    ],
)
def test_grpc_status_exit_codes(
    fake_center: FakeCenter, ctl: Run, status: grpc.StatusCode, exit_code: int
) -> None:
    fake_center.abort("GetBudget", status, "budget nope:\n  went wrong")
    code, out, err = ctl("--json", "get", "nope")
    assert (code, out) == (exit_code, "")
    assert err == "quotactl: error: budget nope: went wrong\n"  # one line, however the server wrote it


def test_error_line_carries_a_generated_request_id(fake_center: FakeCenter, ctl: Run) -> None:
    fake_center.abort("Deduct", grpc.StatusCode.UNAVAILABLE, "redis down")
    code, _, err = ctl("deduct", "b1", "5")
    request = only_call(fake_center, "Deduct")
    assert isinstance(request, common_pb2.DeductRequest)
    assert code == 4
    assert err == (
        f"quotactl: error: redis down (request id {request.request_id}: retry with --request-id {request.request_id})\n"
    )


def test_timeout_is_exit_4(fake_center: FakeCenter, ctl: Run) -> None:
    release = threading.Event()

    def slow(_request: Message, _context: grpc.ServicerContext) -> Message:
        release.wait(5)
        return common_pb2.GetBalanceResponse()

    fake_center.handlers["GetBalance"] = slow
    try:
        code, out, err = ctl("--timeout", "0.2", "balance", "b1")
    finally:
        release.set()
    assert (code, out) == (4, "")
    assert err.startswith("quotactl: error: ")
    assert err.count("\n") == 1
