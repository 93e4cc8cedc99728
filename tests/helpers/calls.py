"""Small async helpers shared by the center's integration tests."""

from __future__ import annotations

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from tests.helpers.center import Client

OK = pb.RESULT_CODE_OK
EXISTS = pb.RESULT_CODE_EXISTS
CONFLICT = pb.RESULT_CODE_CONFLICT
INSUFFICIENT = pb.RESULT_CODE_INSUFFICIENT


async def create(
    client: Client, budget_id: str, total: int, sub_buckets: int = 4, **policy: int
) -> apb.Budget:
    response = await client.admin.CreateBudget(
        apb.CreateBudgetRequest(
            budget_id=budget_id,
            unit="USD-cent",
            total=total,
            policy=apb.SlicePolicy(sub_buckets=sub_buckets, **policy),
            actor="test",
        )
    )
    assert response.code == OK, response.message
    return response.budget


async def deduct(client: Client, budget_id: str, request_id: str, amount: int) -> pb.DeductResponse:
    return await client.quota.Deduct(
        pb.DeductRequest(budget_id=budget_id, request_id=request_id, amount=amount)
    )


async def refund(
    client: Client, budget_id: str, request_id: str, deduction_id: str, amount: int
) -> pb.ReturnResponse:
    return await client.quota.Return(
        pb.ReturnRequest(budget_id=budget_id, request_id=request_id, deduction_id=deduction_id, amount=amount)
    )


async def get(client: Client, budget_id: str) -> apb.Budget:
    return (await client.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))).budget


async def audit(client: Client, budget_id: str) -> apb.BudgetAudit:
    response = await client.admin.Audit(apb.AuditRequest(budget_id=budget_id))
    assert len(response.budgets) == 1
    return response.budgets[0]


async def assert_balanced(client: Client, budget_id: str) -> apb.BudgetAudit:
    report = await audit(client, budget_id)
    assert report.balanced, list(report.mismatches)
    assert report.total == (
        report.main + report.held + report.in_flight + report.reserved + report.in_doubt + report.consumed
    )
    return report
