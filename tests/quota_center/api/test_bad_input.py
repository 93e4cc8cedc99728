"""(c) Bad input is refused with a clear message and changes nothing (promise 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import OK, assert_balanced, create, deduct, get
from tests.helpers.center import Client

MAX = 2**53 - 1
BAD = grpc.StatusCode.INVALID_ARGUMENT

Call = Callable[[Client, str], Awaitable[Any]]


def _deduct(amount: int = 5, rid: str = "rid-1", budget: str | None = None) -> Call:
    async def call(c: Client, b: str) -> Any:
        return await c.quota.Deduct(
            pb.DeductRequest(budget_id=b if budget is None else budget, request_id=rid, amount=amount)
        )

    return call


def _return(amount: int = 5, deduction_id: str = "seed", rid: str = "ret-1") -> Call:
    async def call(c: Client, b: str) -> Any:
        return await c.quota.Return(
            pb.ReturnRequest(
                budget_id=b,
                request_id=f"{b}-{rid}",
                deduction_id=deduction_id and f"{b}-{deduction_id}",
                amount=amount,
            )
        )

    return call


def _batch(*amounts: int) -> Call:
    async def call(c: Client, b: str) -> Any:
        items = [
            pb.DeductRequest(budget_id=b, request_id=f"{b}-batch-{i}", amount=a)
            for i, a in enumerate(amounts)
        ]
        return await c.quota.DeductBatch(pb.DeductBatchRequest(items=items))

    return call


def _create(**fields: Any) -> Call:
    async def call(c: Client, b: str) -> Any:
        request = apb.CreateBudgetRequest(**{"budget_id": f"{b}-new", "unit": "item", "total": 10, **fields})
        return await c.admin.CreateBudget(request)

    return call


def _top_up(amount: int) -> Call:
    async def call(c: Client, b: str) -> Any:
        return await c.admin.TopUp(apb.TopUpRequest(budget_id=b, request_id="t1", amount=amount))

    return call


def _window() -> Call:
    async def call(c: Client, b: str) -> Any:
        start, end = Timestamp(seconds=2_000_000_000), Timestamp(seconds=1_900_000_000)
        request = apb.CreateBudgetRequest(
            budget_id=f"{b}-win", unit="item", total=10, valid_from=start, valid_until=end
        )
        return await c.admin.CreateBudget(request)

    return call


def _list_state(state: int) -> Call:
    async def call(c: Client, b: str) -> Any:
        return await c.admin.ListBudgets(apb.ListBudgetsRequest(state=state))  # type: ignore[arg-type]

    return call


def _garbage() -> Call:
    async def call(c: Client, b: str) -> Any:
        raw = c.channel.unary_unary(
            "/quota.v1.Quota/Deduct", request_serializer=None, response_deserializer=None
        )
        return await raw(b"\xff\xff\xff\xff not a protobuf")

    return call


CASES: list[tuple[str, Call, grpc.StatusCode, str]] = [
    ("zero amount", _deduct(amount=0), BAD, "must be positive"),
    ("negative amount", _deduct(amount=-5), BAD, "must be positive"),
    ("amount over 2^53-1", _deduct(amount=MAX + 1), BAD, "exceeds the maximum"),
    ("unknown budget", _deduct(budget="no-such-budget"), grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("empty budget id", _deduct(budget=""), BAD, "budget_id is required"),
    ("budget id with braces", _deduct(budget="a{b}"), BAD, "budget_id"),
    ("empty request id", _deduct(rid=""), BAD, "request_id is required"),
    ("request id over 128 bytes", _deduct(rid="x" * 129), BAD, "129 bytes"),
    ("control character in id", _deduct(rid="a\x00b"), BAD, "control characters"),
    ("zero return", _return(amount=0), BAD, "must be positive"),
    ("return without deduction id", _return(deduction_id=""), BAD, "deduction_id is required"),
    ("return over 2^53-1", _return(amount=MAX + 1), BAD, "exceeds the maximum"),
    ("batch with one bad item", _batch(5, 5, -1, 5), BAD, "items[2]"),
    ("empty batch", _batch(), BAD, "must not be empty"),
    ("negative total", _create(total=-1), BAD, "must not be negative"),
    ("total over 2^53-1", _create(total=MAX + 1), BAD, "exceeds the maximum"),
    ("unknown strategy enum", _create(policy=apb.SlicePolicy(strategy=99)), BAD, "unknown strategy"),  # type: ignore[arg-type]
    ("window ends before it starts", _window(), BAD, "valid_from must be before valid_until"),
    ("empty unit", _create(unit=""), BAD, "unit"),
    ("zero top-up", _top_up(0), BAD, "must be positive"),
    ("top-up past 2^53-1", _top_up(MAX), BAD, "exceed"),
    ("unknown state enum", _list_state(42), BAD, "unknown budget state"),
    ("malformed message", _garbage(), BAD, "malformed Deduct request"),
]


async def _snapshot(client: Client, database_url: str, budget_id: str) -> tuple[Any, ...]:
    b = await get(client, budget_id)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM ledger WHERE budget_id LIKE $1", f"{budget_id}%")
        budgets = await conn.fetchval("SELECT count(*) FROM budgets WHERE budget_id LIKE $1", f"{budget_id}%")
    finally:
        await conn.close()
    return (b.total, b.consumed, b.main, b.held, b.available, b.state, rows, budgets)


def test_at_least_fifteen_kinds_of_bad_input_are_covered() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize(("name", "call", "status", "text"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_and_changes_nothing(
    client: Client,
    budget_id: str,
    database_url: str,
    name: str,
    call: Call,
    status: grpc.StatusCode,
    text: str,
) -> None:
    await create(client, budget_id, 1_000)
    assert (await deduct(client, budget_id, f"{budget_id}-seed", 100)).code == OK
    before = await _snapshot(client, database_url, budget_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(client, budget_id)
    assert refused.value.code() == status, refused.value.details()
    assert text.lower() in (refused.value.details() or "").lower()
    assert await _snapshot(client, database_url, budget_id) == before
    await assert_balanced(client, budget_id)


@pytest.mark.parametrize(("state_call", "code"), [("PauseBudget", "PAUSED"), ("CloseBudget", "CLOSED")])
async def test_paused_and_closed_budgets_refuse_deductions(
    client: Client, budget_id: str, database_url: str, state_call: str, code: str
) -> None:
    await create(client, budget_id, 1_000)
    assert (await deduct(client, budget_id, f"{budget_id}-seed", 100)).code == OK
    await getattr(client.admin, state_call)(apb.ChangeStateRequest(budget_id=budget_id, actor="test"))
    before = await _snapshot(client, database_url, budget_id)
    r = await deduct(client, budget_id, f"{budget_id}-late", 10)
    assert r.code == pb.ResultCode.Value(f"RESULT_CODE_BUDGET_{code}")
    assert budget_id in r.message
    assert await _snapshot(client, database_url, budget_id) == before
    if code == "PAUSED":
        await client.admin.ResumeBudget(apb.ChangeStateRequest(budget_id=budget_id))
        assert (await deduct(client, budget_id, f"{budget_id}-after", 10)).code == OK
