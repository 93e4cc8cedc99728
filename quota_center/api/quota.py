"""The spending API at the center (proto ``quota.v1.Quota``)."""

from __future__ import annotations

import asyncio

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from quota_center.api.convert import balance_response
from quota_center.api.errors import Context, rpc
from quota_center.budgets.admin import Admin
from quota_center.spending.deductions import Answer, Spending, check_deduct
from quota_center.spending.reservations import Reservations
from quota_rules.limits import InvalidInput, check_batch_size
from quota_rules.results import result_code
from quota_rules.retries import is_retry


def answer_by(context: Context) -> float | None:
    """When a batch stops starting items (the event loop's clock): the caller's deadline less a
    quarter of the time left (at most a second) for the items under way and the answer, which
    for 10,000 items is itself tens of milliseconds of a loaded process's time."""
    left = context.time_remaining()
    if left is None or left > 1e6:  # no deadline
        return None
    return asyncio.get_running_loop().time() + left - min(1.0, left / 4)


class QuotaServicer(quota_pb2_grpc.QuotaServicer):
    def __init__(self, spending: Spending, admin: Admin, reservations: Reservations) -> None:
        self.spending = spending
        self.admin = admin
        self.reservations = reservations

    @rpc("Deduct")
    async def Deduct(self, request: pb.DeductRequest, context: Context) -> pb.DeductResponse:
        answer = await self.spending.deduct(
            request.budget_id,
            request.request_id,
            request.amount,
            retry=is_retry(context.invocation_metadata()),
        )
        return _deduct_response(request, answer)

    @rpc("DeductBatch")
    async def DeductBatch(self, request: pb.DeductBatchRequest, context: Context) -> pb.DeductBatchResponse:
        check_batch_size(len(request.items))
        # Validate every item before the first deduction: a bad batch changes nothing.
        for i, item in enumerate(request.items):
            try:
                check_deduct(item.budget_id, item.request_id, item.amount)
            except InvalidInput as exc:
                raise InvalidInput(f"items[{i}]: {exc}") from None
        answers = await self.spending.deduct_many(
            [(i.budget_id, i.request_id, i.amount) for i in request.items],
            answer_by(context),
            retry=is_retry(context.invocation_metadata()),
        )
        return pb.DeductBatchResponse(
            results=[_deduct_response(i, a) for i, a in zip(request.items, answers, strict=True)]
        )

    @rpc("Return")
    async def Return(self, request: pb.ReturnRequest, context: Context) -> pb.ReturnResponse:
        answer = await self.spending.refund(
            request.budget_id, request.request_id, request.deduction_id, request.amount
        )
        return pb.ReturnResponse(
            code=result_code(answer.code),
            message=answer.message,
            budget_id=request.budget_id,
            request_id=request.request_id,
            deduction_id=request.deduction_id,
            amount=answer.amount,
            refundable=answer.refundable,
        )

    @rpc("GetBalance")
    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        return balance_response(await self.admin.view(request.budget_id))

    @rpc("Reserve")
    async def Reserve(self, request: pb.ReserveRequest, context: Context) -> pb.ReserveResponse:
        answer = await self.reservations.reserve(
            request.budget_id, request.request_id, request.amount, request.ttl_ms
        )
        return pb.ReserveResponse(
            code=result_code(answer.code),
            message=answer.message,
            budget_id=request.budget_id,
            request_id=request.request_id,
            amount=answer.amount,
            expires_at_ms=answer.expires_at_ms,
        )

    @rpc("Confirm")
    async def Confirm(self, request: pb.ConfirmRequest, context: Context) -> pb.ConfirmResponse:
        answer = await self.reservations.confirm(request.budget_id, request.reservation_id, request.amount)
        return pb.ConfirmResponse(
            code=result_code(answer.code),
            message=answer.message,
            budget_id=request.budget_id,
            reservation_id=request.reservation_id,
            amount=answer.amount,
            released=answer.released,
        )

    @rpc("Cancel")
    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.CancelResponse:
        answer = await self.reservations.cancel(request.budget_id, request.reservation_id)
        return pb.CancelResponse(
            code=result_code(answer.code),
            message=answer.message,
            budget_id=request.budget_id,
            reservation_id=request.reservation_id,
            released=answer.released,
        )


def _deduct_response(request: pb.DeductRequest, answer: Answer) -> pb.DeductResponse:
    return pb.DeductResponse(
        code=result_code(answer.code),
        message=answer.message,
        budget_id=request.budget_id,
        request_id=request.request_id,
        amount=answer.amount,
        unreachable=[pb.Holding(holder=h, amount=n, reachable=False) for h, n in answer.unreachable],
    )
