"""Table tests of quotactl.render (pure functions: message -> text / JSON dict)."""

from __future__ import annotations

import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2, common_pb2
from quotactl import render
from tests.helpers.fake_center import budget


def budget_audit(**overrides: object) -> admin_pb2.BudgetAudit:
    fields: dict[str, object] = {
        "budget_id": "b1",
        "total": 10_000,
        "main": 6_000,
        "held": 1_500,
        "consumed": 2_500,
        "balanced": True,
        "holders": [
            admin_pb2.HolderAudit(holder="sub:0", observed=1_000, ledgered=1_000, balance=600, consumed=400),
            admin_pb2.HolderAudit(holder="agent:eu-1", observed=500, ledgered=500, balance=500),
        ],
    }
    fields.update(overrides)
    return admin_pb2.BudgetAudit(**fields)  # type: ignore[arg-type]


# Enums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (common_pb2.RESULT_CODE_OK, "OK"),
        (common_pb2.RESULT_CODE_EXISTS, "EXISTS"),
        (common_pb2.RESULT_CODE_INSUFFICIENT, "INSUFFICIENT"),
        (common_pb2.RESULT_CODE_CONFLICT, "CONFLICT"),
        (common_pb2.RESULT_CODE_BUDGET_PAUSED, "BUDGET_PAUSED"),
        (common_pb2.RESULT_CODE_BUDGET_OUTSIDE_WINDOW, "BUDGET_OUTSIDE_WINDOW"),
        (common_pb2.RESULT_CODE_UNSPECIFIED, "UNSPECIFIED"),
        (99, "UNKNOWN(99)"),
    ],
)
def test_code_label(code: int, label: str) -> None:
    assert render.code_label(code) == label


def test_every_result_code_loses_its_prefix() -> None:
    for value in common_pb2.ResultCode.DESCRIPTOR.values:
        label = render.code_label(value.number)
        assert value.name == "RESULT_CODE_" + label


@pytest.mark.parametrize(
    ("func", "number", "label"),
    [
        (render.state_label, common_pb2.BUDGET_STATE_ACTIVE, "ACTIVE"),
        (render.state_label, common_pb2.BUDGET_STATE_PAUSED, "PAUSED"),
        (render.state_label, common_pb2.BUDGET_STATE_CLOSED, "CLOSED"),
        (render.mode_label, common_pb2.MODE_NORMAL, "NORMAL"),
        (render.mode_label, common_pb2.MODE_SCARCE, "SCARCE"),
        (render.mode_label, common_pb2.MODE_CENTRAL, "CENTRAL"),
        (render.strategy_label, common_pb2.STRATEGY_PROGRESSIVE, "PROGRESSIVE"),
        (render.strategy_label, common_pb2.STRATEGY_STATIC, "STATIC"),
        (render.strategy_label, common_pb2.STRATEGY_UNSPECIFIED, "UNSPECIFIED"),
    ],
)
def test_enum_labels(func: object, number: int, label: str) -> None:
    assert callable(func)
    assert func(number) == label


# Times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "nanos", "text"),
    [
        (0, 0, "1970-01-01T00:00:00Z"),
        (1_735_689_600, 0, "2025-01-01T00:00:00Z"),
        (1_735_689_600, 500_000_000, "2025-01-01T00:00:00.5Z"),
        (1_735_689_600, 1, "2025-01-01T00:00:00.000000001Z"),
        (-1, 250_000_000, "1969-12-31T23:59:59.25Z"),
    ],
)
def test_timestamp_text(seconds: int, nanos: int, text: str) -> None:
    assert render.timestamp_text(Timestamp(seconds=seconds, nanos=nanos)) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "-"), (1_735_689_600_000, "2025-01-01T00:00:00Z"), (1_735_689_600_250, "2025-01-01T00:00:00.25Z")],
)
def test_millis_text(ms: int, text: str) -> None:
    assert render.millis_text(ms) == text


# JSON -----------------------------------------------------------------------------------------


def test_to_json_budget_keeps_ints_and_every_field() -> None:
    b = budget(total=2**53 - 1, valid_from=Timestamp(seconds=1_735_689_600))
    b.policy.strategy = common_pb2.STRATEGY_STATIC
    data = render.to_json(b)
    assert set(data) == {field.name for field in admin_pb2.Budget.DESCRIPTOR.fields}
    assert data["total"] == 2**53 - 1
    assert type(data["total"]) is int
    assert data["in_flight"] == 0  # zero values are present, not omitted
    assert data["state"] == "ACTIVE"
    assert data["mode"] == "NORMAL"
    assert data["valid_from"] == "2025-01-01T00:00:00Z"
    assert data["valid_until"] is None
    assert data["created_at"] is None
    assert data["policy"] == {
        "strategy": "STATIC",
        "sub_buckets": 0,
        "min_slice": 0,
        "max_slice": 0,
        "refill_horizon_ms": 0,
        "low_watermark_pct": 0,
        "scarcity_threshold": 0,
        "central_threshold": 0,
        "lease_ms": 0,
    }
    # Survives json.dumps exactly: no int64-as-string.
    assert json.loads(json.dumps(data))["total"] == 2**53 - 1


def test_to_json_unset_submessage_is_null() -> None:
    data = render.to_json(admin_pb2.BudgetResponse(code=common_pb2.RESULT_CODE_CONFLICT, message="differs"))
    assert data == {"code": "CONFLICT", "message": "differs", "budget": None}


def test_to_json_repeated_and_nested() -> None:
    response = admin_pb2.AuditResponse(budgets=[budget_audit(mismatches=["sub:0 off by 1"])], balanced=False)
    data = render.to_json(response)
    assert data["balanced"] is False
    budgets = data["budgets"]
    assert isinstance(budgets, list)
    first = budgets[0]
    assert isinstance(first, dict)
    assert first["mismatches"] == ["sub:0 off by 1"]
    assert first["holders"] == [
        {
            "holder": "sub:0",
            "observed": 1000,
            "ledgered": 1000,
            "balance": 600,
            "consumed": 400,
            "reserved": 0,
            "in_doubt": 0,
        },
        {
            "holder": "agent:eu-1",
            "observed": 500,
            "ledgered": 500,
            "balance": 500,
            "consumed": 0,
            "reserved": 0,
            "in_doubt": 0,
        },
    ]


def test_to_json_deduct_response() -> None:
    response = common_pb2.DeductResponse(
        code=common_pb2.RESULT_CODE_INSUFFICIENT,
        budget_id="b1",
        request_id="r1",
        unreachable=[common_pb2.Holding(holder="agent:eu-1", amount=40, reachable=False)],
    )
    assert render.to_json(response) == {
        "code": "INSUFFICIENT",
        "message": "",
        "budget_id": "b1",
        "request_id": "r1",
        "amount": 0,
        "unreachable": [{"holder": "agent:eu-1", "amount": 40, "reachable": False}],
    }


# Text building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "rows", "expected"),
    [
        (
            ["NAME", "N"],
            [["a", 1], ["bbb", 1000]],
            "NAME     N\na        1\nbbb   1000",
        ),
        (
            ["HOLDER", "AMOUNT", "REACHABLE"],
            [["agent:eu-1", 40, "no"]],
            "HOLDER      AMOUNT  REACHABLE\nagent:eu-1      40  no",
        ),
        (["A", "B"], [], "A  B"),
        (["X", "Y"], [["long text", "x"], [1, "y"]], "X          Y\nlong text  x\n1          y"),
    ],
)
def test_format_table(headers: list[str], rows: list[list[str | int]], expected: str) -> None:
    assert render.format_table(headers, rows) == expected


def test_format_table_indent_and_shape() -> None:
    assert render.format_table(["A"], [[1]], indent="  ") == "  A\n  1"
    with pytest.raises(ValueError, match="one cell per header"):
        render.format_table(["A", "B"], [[1]])


def test_format_fields() -> None:
    assert render.format_fields([("id", "b1"), ("in flight", 0), ("message", "")]) == (
        "id:        b1\nin flight: 0\nmessage:"
    )
    assert render.format_fields([]) == ""


# Commands' text -------------------------------------------------------------------------------


def test_budget_text() -> None:
    b = budget(created_at=Timestamp(seconds=1_735_689_600))
    b.policy.strategy = common_pb2.STRATEGY_PROGRESSIVE
    b.policy.min_slice = 10
    assert render.budget_text(b) == "\n".join(
        [
            "id:          b1",
            "unit:        cent",
            "state:       ACTIVE",
            "mode:        NORMAL",
            "total:       10000",
            "main:        6000",
            "held:        1500",
            "in flight:   0",
            "reserved:    0",
            "in doubt:    0",
            "consumed:    2500",
            "available:   7500",
            "strategy:    PROGRESSIVE",
            "sub buckets: default",
            "min slice:   10",
            "max slice:   default",
            "valid from:  -",
            "valid until: -",
            "created at:  2025-01-01T00:00:00Z",
        ]
    )


def test_budget_response_text_shows_result_then_budget() -> None:
    response = admin_pb2.BudgetResponse(
        code=common_pb2.RESULT_CODE_EXISTS, message="already created", budget=budget()
    )
    lines = render.budget_response_text(response).splitlines()
    assert lines[:3] == ["result:      EXISTS", "message:     already created", "id:          b1"]


def test_budget_response_text_without_result_or_budget() -> None:
    assert render.budget_response_text(
        admin_pb2.BudgetResponse(budget=budget()), show_result=False
    ).startswith("id:")
    assert render.budget_response_text(admin_pb2.BudgetResponse(code=common_pb2.RESULT_CODE_CONFLICT)) == (
        "result: CONFLICT"
    )


def test_budgets_table() -> None:
    rows = [budget(), budget(budget_id="second", state=common_pb2.BUDGET_STATE_PAUSED, total=5, available=5)]
    assert render.budgets_table(rows) == "\n".join(
        [
            "BUDGET  STATE   MODE    UNIT  TOTAL  CONSUMED  RESERVED  IN DOUBT  AVAILABLE",
            "b1      ACTIVE  NORMAL  cent  10000      2500         0         0       7500",
            "second  PAUSED  NORMAL  cent      5      2500         0         0          5",
        ]
    )
    assert render.budgets_table([]) == "no budgets"
    assert render.budgets_table(rows[:1], more=True).endswith(
        "(more budgets exist: raise --limit to see them)"
    )


def test_audit_identity_line() -> None:
    assert render.audit_identity(budget_audit()) == (
        "total 10000 = main 6000 + held 1500 + in flight 0 + reserved 0 + in doubt 0 + consumed 2500  BALANCED"
    )
    assert render.audit_identity(budget_audit(balanced=False)).endswith("  MISMATCH")


def test_audit_text_balanced() -> None:
    response = admin_pb2.AuditResponse(budgets=[budget_audit()], balanced=True)
    assert render.audit_balanced(response)
    assert render.audit_text(response) == "\n".join(
        [
            "budget b1",
            "  total 10000 = main 6000 + held 1500 + in flight 0 + reserved 0 + in doubt 0 + consumed 2500  BALANCED",
            "  HOLDER      OBSERVED  LEDGERED  BALANCE  CONSUMED  RESERVED  IN DOUBT",
            "  sub:0           1000      1000      600       400         0         0",
            "  agent:eu-1       500       500      500         0         0         0",
            "audit: BALANCED (1 budget)",
        ]
    )


def test_audit_text_mismatch_lists_every_mismatch() -> None:
    bad = budget_audit(
        budget_id="b2",
        balanced=False,
        holders=[],
        mismatches=["sub:1 observed 10 != ledgered 20", "ledger lag"],
    )
    response = admin_pb2.AuditResponse(budgets=[budget_audit(), bad], balanced=False)
    assert not render.audit_balanced(response)
    text = render.audit_text(response)
    assert "  mismatch: sub:1 observed 10 != ledgered 20\n  mismatch: ledger lag\n  no holders" in text
    assert text.endswith("audit: MISMATCH (1 of 2 budgets)")


def test_audit_checks_the_identity_itself() -> None:
    """A center claiming balance while its parts do not add up is still a mismatch."""
    wrong = budget_audit(main=5_999)
    response = admin_pb2.AuditResponse(budgets=[wrong], balanced=True)
    assert not render.budget_audit_balanced(wrong)
    assert not render.audit_balanced(response)
    assert "  mismatch: the parts sum to 9999, not the total 10000" in render.audit_text(response)


def test_audit_text_no_budgets() -> None:
    assert render.audit_text(admin_pb2.AuditResponse(balanced=True)) == "audit: BALANCED (0 budgets)"
    assert not render.audit_balanced(admin_pb2.AuditResponse(balanced=False))


def test_deduct_text_with_unreachable_holders() -> None:
    response = common_pb2.DeductResponse(
        code=common_pb2.RESULT_CODE_INSUFFICIENT,
        message="only 10 available",
        budget_id="b1",
        request_id="r1",
        unreachable=[common_pb2.Holding(holder="agent:eu-1", amount=40, reachable=False)],
    )
    assert render.deduct_text(response) == "\n".join(
        [
            "result:     INSUFFICIENT",
            "message:    only 10 available",
            "budget:     b1",
            "request id: r1",
            "amount:     0",
            "unreachable holders:",
            "  HOLDER      AMOUNT  REACHABLE",
            "  agent:eu-1      40  no",
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected_lines"),
    [
        (
            render.return_text(
                common_pb2.ReturnResponse(
                    code=common_pb2.RESULT_CODE_OK,
                    budget_id="b1",
                    request_id="ret-1",
                    deduction_id="r1",
                    amount=100,
                    refundable=200,
                )
            ),
            ["result:       OK", "deduction id: r1", "amount:       100", "refundable:   200"],
        ),
        (
            render.reserve_text(
                common_pb2.ReserveResponse(
                    code=common_pb2.RESULT_CODE_OK,
                    budget_id="b1",
                    request_id="res-1",
                    amount=50,
                    expires_at_ms=1_735_689_600_000,
                )
            ),
            ["reservation id: res-1", "expires at:     2025-01-01T00:00:00Z"],
        ),
        (
            render.confirm_text(
                common_pb2.ConfirmResponse(
                    code=common_pb2.RESULT_CODE_CANCELLED, budget_id="b1", reservation_id="res-1"
                )
            ),
            ["result:         CANCELLED", "released:       0"],
        ),
        (
            render.cancel_text(
                common_pb2.CancelResponse(
                    code=common_pb2.RESULT_CODE_OK, budget_id="b1", reservation_id="res-1", released=50
                )
            ),
            ["reservation id: res-1", "released:       50"],
        ),
        (
            render.settle_text(
                admin_pb2.SettleResponse(
                    code=common_pb2.RESULT_CODE_OK,
                    budget_id="b1",
                    holder="sub:3",
                    settled=30,
                    consumed=10,
                    returned_to_main=20,
                )
            ),
            ["holder:           sub:3", "settled:          30", "returned to main: 20"],
        ),
        (
            render.balance_text(
                common_pb2.GetBalanceResponse(
                    budget_id="b1",
                    unit="cent",
                    state=common_pb2.BUDGET_STATE_PAUSED,
                    mode=common_pb2.MODE_SCARCE,
                    total=100,
                    available=40,
                    consumed=60,
                    held_here=7,
                )
            ),
            ["state:     PAUSED", "mode:      SCARCE", "available: 40", "held here: 7"],
        ),
    ],
)
def test_response_texts(text: str, expected_lines: list[str]) -> None:
    lines = text.splitlines()
    for line in expected_lines:
        assert line in lines
    assert not any("RESULT_CODE_" in line or "BUDGET_STATE_" in line or "MODE_" in line for line in lines)
