"""Budget administration (proto ``quota.v1.Admin``)."""

from __future__ import annotations

from quota.v1 import admin_pb2 as apb
from quota.v1 import admin_pb2_grpc
from quota_center.api.convert import audit_to_pb, budget_to_pb, policy_from_pb, state_name, time_from_pb
from quota_center.api.errors import Context, rpc
from quota_center.budgets.admin import Admin, Change
from quota_center.budgets.audit import Auditor
from quota_center.errors import Unavailable
from quota_center.ledger.errors import BudgetClosed, LedgerConflict
from quota_center.recovery.settlement import Known, Settled, Settlement
from quota_rules.guard import current_caller
from quota_rules.limits import InvalidInput, check_budget_id
from quota_rules.results import result_code

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _actor(claimed: str) -> str:
    """Who the ledger records: the authenticated caller; the request's free-text ``actor`` only
    for a caller with no identity (plaintext, local development)."""
    caller = current_caller()
    return caller.name if caller.name else claimed


def _known(request: apb.SettleRequest, k: Known) -> apb.SettleResponse:
    return apb.SettleResponse(
        code=result_code("OK"),
        message="dry run: nothing changed",
        budget_id=request.budget_id,
        holder=request.holder,
        in_doubt=k.in_doubt,
        booked=k.booked,
        logged=k.logged,
        log_complete=k.log_complete,
        waiting_for=list(k.waiting_for),
        at_least=k.at_least,
        at_most=k.at_most,
        note=k.note,
    )


def _response(change: Change) -> apb.BudgetResponse:
    return apb.BudgetResponse(
        code=result_code(change.code), message=change.message, budget=budget_to_pb(change.view)
    )


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, admin: Admin, auditor: Auditor, settlement: Settlement | None = None) -> None:
        self.admin = admin
        self.auditor = auditor
        self.settlement = settlement

    @rpc("CreateBudget")
    async def CreateBudget(self, request: apb.CreateBudgetRequest, context: Context) -> apb.BudgetResponse:
        change = await self.admin.create(
            request.budget_id,
            unit=request.unit,
            total=request.total,
            policy=policy_from_pb(request.policy),
            valid_from=time_from_pb(request.valid_from, request.HasField("valid_from"), "valid_from"),
            valid_until=time_from_pb(request.valid_until, request.HasField("valid_until"), "valid_until"),
            actor=_actor(request.actor),
            reason=request.reason,
        )
        return _response(change)

    @rpc("TopUp")
    async def TopUp(self, request: apb.TopUpRequest, context: Context) -> apb.BudgetResponse:
        try:
            change = await self.admin.top_up(
                request.budget_id, request.request_id, request.amount, _actor(request.actor), request.reason
            )
        except LedgerConflict as exc:
            view = await self.admin.view(request.budget_id)
            return _response(Change("CONFLICT", view, str(exc)))
        except BudgetClosed as exc:
            view = await self.admin.view(request.budget_id)
            return _response(Change("BUDGET_CLOSED", view, str(exc)))
        return _response(change)

    @rpc("PauseBudget")
    async def PauseBudget(self, request: apb.ChangeStateRequest, context: Context) -> apb.BudgetResponse:
        return _response(
            await self.admin.set_state(request.budget_id, "paused", _actor(request.actor), request.reason)
        )

    @rpc("ResumeBudget")
    async def ResumeBudget(self, request: apb.ChangeStateRequest, context: Context) -> apb.BudgetResponse:
        return _response(
            await self.admin.set_state(request.budget_id, "active", _actor(request.actor), request.reason)
        )

    @rpc("CloseBudget")
    async def CloseBudget(self, request: apb.ChangeStateRequest, context: Context) -> apb.BudgetResponse:
        return _response(
            await self.admin.set_state(request.budget_id, "closed", _actor(request.actor), request.reason)
        )

    @rpc("GetBudget")
    async def GetBudget(self, request: apb.GetBudgetRequest, context: Context) -> apb.BudgetResponse:
        return _response(Change("OK", await self.admin.view(request.budget_id)))

    @rpc("ListBudgets")
    async def ListBudgets(self, request: apb.ListBudgetsRequest, context: Context) -> apb.ListBudgetsResponse:
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise InvalidInput(f"page_size must be at most {MAX_PAGE}")
        after = request.page_token or None
        if after is not None:
            check_budget_id(after)
        views = await self.admin.list_views(state=state_name(request.state), after=after, limit=size)
        token = views[-1].row.budget_id if len(views) == size else ""
        return apb.ListBudgetsResponse(budgets=[budget_to_pb(v) for v in views], next_page_token=token)

    @rpc("Settle")
    async def Settle(self, request: apb.SettleRequest, context: Context) -> apb.SettleResponse:
        if self.settlement is None:
            raise Unavailable("settlement is not configured on this center")
        if request.dry_run:
            return _known(request, await self.settlement.known(request.budget_id, request.holder))
        try:
            done = await self.settlement.settle_by_hand(
                request.budget_id, request.holder, request.consumed, _actor(request.actor), request.reason
            )
        except LedgerConflict as exc:
            done = Settled("CONFLICT", 0, 0, 0, str(exc))
        return apb.SettleResponse(
            code=result_code(done.code),
            message=done.message,
            budget_id=request.budget_id,
            holder=request.holder,
            settled=done.settled,
            consumed=done.consumed,
            returned_to_main=done.returned,
        )

    @rpc("Audit")
    async def Audit(self, request: apb.AuditRequest, context: Context) -> apb.AuditResponse:
        token = ""
        if request.budget_id:
            check_budget_id(request.budget_id)
            await self.admin.view(request.budget_id)  # NOT_FOUND for an unknown budget
            reports = [await self.auditor.audit(request.budget_id)]
        else:
            state = state_name(request.state)
            after = request.page_token or None
            if after is not None:
                check_budget_id(after)
            if request.page_size > MAX_PAGE:
                raise InvalidInput(f"page_size must be at most {MAX_PAGE}")
            size = request.page_size or MAX_PAGE
            reports = []
            while True:  # page_size 0: every page, in one answer
                rows = await self.admin.ledger.list_budgets(state=state, after=after, limit=size)
                page = await self.auditor.audit_many([r.budget_id for r in rows])
                reports += [page[r.budget_id] for r in rows if r.budget_id in page]
                after = rows[-1].budget_id if len(rows) == size else None
                if request.page_size or after is None:
                    break
            token = (after or "") if request.page_size else ""
        return apb.AuditResponse(
            budgets=[audit_to_pb(r) for r in reports],
            balanced=all(r.balanced for r in reports),
            next_page_token=token,
        )
