"""One function per subcommand: build the request, call the stub, pick the exit code.

Each function takes the call context and the parsed arguments (already validated and
converted by ``main``'s argparse types) and returns an :class:`Outcome`; failures are
raised as :class:`CtlError`. Nothing here prints.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2, admin_pb2_grpc, common_pb2, quota_pb2_grpc
from quotactl import bulk, parse, render
from quotactl.exit_codes import ExitCode, for_result, for_status

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)

# ListBudgetsRequest.page_size is capped at 1000 by the server.
MAX_PAGE_SIZE = 1000


def silent(line: str) -> None:
    """Where a Context without a terminal sends its lines."""


@dataclass(frozen=True)
class Context:
    admin: admin_pb2_grpc.AdminStub
    quota: quota_pb2_grpc.QuotaStub
    timeout: float  # seconds, per RPC
    actor: str
    # Long commands print what they have as they go (stdout), and say how far they got (stderr).
    stream: Callable[[str], None] = silent
    progress: Callable[[str], None] = silent


@dataclass(frozen=True)
class Outcome:
    payload: render.JsonDict  # printed with --json
    text: str  # printed otherwise
    exit_code: ExitCode


class CtlError(Exception):
    """A failure reported as one stderr line and an exit code."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, *, note: str = "") -> CtlError:
        # The stubs type code() and details() on RpcError; the blocking client's errors
        # (grpc._channel._InactiveRpcError, also a grpc.Call) implement them.
        status = error.code()
        details = error.details() or status.name
        message = " ".join(details.split())  # one line, whatever the server sent
        return cls(f"{message}{note}", for_status(status))


def _invoke(
    ctx: Context, method: grpc.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req, note: str = ""
) -> _Resp:
    try:
        return method(request, timeout=ctx.timeout)
    except grpc.RpcError as error:
        raise CtlError.from_rpc(error, note=note) from None


def _request_id(given: str | None) -> tuple[str, str]:
    """The idempotency key to use, and an error note telling it when it was generated.

    A generated key is printed with the response; if the call fails (e.g. timed out)
    the error line carries it instead, so the request can be retried safely.
    """
    if given is not None:
        return given, ""
    generated = str(uuid.uuid4())
    return generated, f" (request id {generated}: retry with --request-id {generated})"


def _outcome(response: Message, text: str, exit_code: ExitCode) -> Outcome:
    return Outcome(payload=render.to_json(response), text=text, exit_code=exit_code)


def _budget_outcome(response: admin_pb2.BudgetResponse) -> Outcome:
    return _outcome(response, render.budget_response_text(response), for_result(response.code))


def _before(first: Timestamp, second: Timestamp) -> bool:
    return (first.seconds, first.nanos) < (second.seconds, second.nanos)


# ---------------------------------------------------------------------------------------------
# Admin


def create(ctx: Context, args: argparse.Namespace) -> Outcome:
    if args.from_file is not None:
        if args.budget_id or args.total is not None:
            raise CtlError("--from-file names its budgets: give no BUDGET nor --total", ExitCode.USAGE)
        return create_many(ctx, args.from_file, args.format)
    if not args.budget_id or args.total is None:
        raise CtlError("give BUDGET and --total N, or --from-file PATH", ExitCode.USAGE)
    min_slice: int | None = args.min_slice
    max_slice: int | None = args.max_slice
    valid_from: Timestamp | None = args.valid_from
    valid_until: Timestamp | None = args.valid_until
    if min_slice is not None and max_slice is not None and min_slice > max_slice:
        raise CtlError("--min-slice must not exceed --max-slice", ExitCode.USAGE)
    if valid_from is not None and valid_until is not None and not _before(valid_from, valid_until):
        raise CtlError("--valid-from must be before --valid-until", ExitCode.USAGE)
    policy = admin_pb2.SlicePolicy(
        strategy=parse.STRATEGIES[args.strategy] if args.strategy else common_pb2.STRATEGY_UNSPECIFIED,
        sub_buckets=args.sub_buckets or 0,
        min_slice=min_slice or 0,
        max_slice=max_slice or 0,
    )
    request = admin_pb2.CreateBudgetRequest(
        budget_id=args.budget_id,
        unit=args.unit,
        total=args.total,
        policy=policy,
        actor=ctx.actor,
        reason=args.reason,
    )
    if valid_from is not None:
        request.valid_from.CopyFrom(valid_from)
    if valid_until is not None:
        request.valid_until.CopyFrom(valid_until)
    return _budget_outcome(_invoke(ctx, ctx.admin.CreateBudget, request))


# CreateBudget calls in flight at once when creating from a file.
CREATE_CONCURRENCY = 16


def create_many(ctx: Context, path: str, fmt: str | None) -> Outcome:
    """Every budget of a file, one CreateBudget each (``CREATE_CONCURRENCY`` at a time), after the
    whole file was checked. A budget that exists with the same definition counts as done, so a
    rerun after a failure creates only what is missing."""
    try:
        kind = bulk.format_of(path, fmt)
        with open(path, encoding="utf-8") if path != "-" else contextlib.nullcontext(sys.stdin) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CtlError(f"{path}: {exc}", ExitCode.USAGE) from None
    parsed = bulk.parse_rows(text, kind, actor=ctx.actor)
    if parsed.problems:
        raise CtlError(f"{path}: nothing created: " + "; ".join(parsed.problems), ExitCode.USAGE)
    tally: dict[str, list[str]] = {"created": [], "existed": [], "conflict": [], "failed": []}
    started = last = time.monotonic()
    total = len(parsed.requests)

    def one(line: int, request: admin_pb2.CreateBudgetRequest) -> tuple[str, str]:
        try:
            response = ctx.admin.CreateBudget(request, timeout=ctx.timeout)
        except grpc.RpcError as error:
            return "failed", f"line {line}: {request.budget_id}: {CtlError.from_rpc(error).message}"
        code = response.code
        if code == common_pb2.RESULT_CODE_OK:
            return "created", request.budget_id
        if code == common_pb2.RESULT_CODE_EXISTS:
            return "existed", request.budget_id
        if code == common_pb2.RESULT_CODE_CONFLICT:
            return "conflict", f"line {line}: {request.budget_id}: {response.message}"
        return (
            "failed",
            f"line {line}: {request.budget_id}: {common_pb2.ResultCode.Name(code)} {response.message}",
        )

    with futures.ThreadPoolExecutor(CREATE_CONCURRENCY) as pool:
        for done, (how, what) in enumerate(pool.map(lambda lr: one(*lr), parsed.requests), start=1):
            tally[how].append(what)
            now = time.monotonic()
            if now - last >= 1.0 and done < total:
                last = now
                ctx.progress(
                    f"create: {done:,} of {total:,} ({len(tally['created']):,} created,"
                    f" {len(tally['existed']):,} already there), {done / (now - started):,.0f}/s"
                )
    lines = [
        f"created {len(tally['created']):,}, already there {len(tally['existed']):,},"
        f" conflicting {len(tally['conflict']):,}, failed {len(tally['failed']):,} (of {total:,} in {path})"
    ]
    lines += [f"conflict: {c}" for c in tally["conflict"]] + [f"failed: {f}" for f in tally["failed"]]
    if tally["failed"]:
        lines.append("run the same command again: budgets already there count as done")
    payload: render.JsonDict = {
        "created": len(tally["created"]),
        "existed": len(tally["existed"]),
        "conflicts": list(tally["conflict"]),
        "failed": list(tally["failed"]),
    }
    code = ExitCode.ERROR if tally["failed"] else ExitCode.REFUSED if tally["conflict"] else ExitCode.OK
    return Outcome(payload, "\n".join(lines), code)


def top_up(ctx: Context, args: argparse.Namespace) -> Outcome:
    request = admin_pb2.TopUpRequest(
        budget_id=args.budget_id,
        request_id=args.request_id,
        amount=args.amount,
        actor=ctx.actor,
        reason=args.reason,
    )
    return _budget_outcome(_invoke(ctx, ctx.admin.TopUp, request))


def _change_state(ctx: Context, args: argparse.Namespace) -> admin_pb2.ChangeStateRequest:
    return admin_pb2.ChangeStateRequest(budget_id=args.budget_id, actor=ctx.actor, reason=args.reason)


def pause(ctx: Context, args: argparse.Namespace) -> Outcome:
    return _budget_outcome(_invoke(ctx, ctx.admin.PauseBudget, _change_state(ctx, args)))


def resume(ctx: Context, args: argparse.Namespace) -> Outcome:
    return _budget_outcome(_invoke(ctx, ctx.admin.ResumeBudget, _change_state(ctx, args)))


def close(ctx: Context, args: argparse.Namespace) -> Outcome:
    return _budget_outcome(_invoke(ctx, ctx.admin.CloseBudget, _change_state(ctx, args)))


def get(ctx: Context, args: argparse.Namespace) -> Outcome:
    response = _invoke(ctx, ctx.admin.GetBudget, admin_pb2.GetBudgetRequest(budget_id=args.budget_id))
    exit_code = for_result(response.code, unset_is_ok=True)
    # A read needs no "result: OK" line; a refusal (should a server send one) still shows.
    text = render.budget_response_text(response, show_result=exit_code != ExitCode.OK)
    return _outcome(response, text, exit_code)


def list_budgets(ctx: Context, args: argparse.Namespace) -> Outcome:
    """Follow page tokens until the end or until --limit budgets were collected.

    The JSON payload is one ListBudgetsResponse holding every collected budget; its
    next_page_token is empty unless --limit cut the listing short.
    """
    limit: int | None = args.limit
    state = parse.STATES[args.state] if args.state else common_pb2.BUDGET_STATE_UNSPECIFIED
    collected = admin_pb2.ListBudgetsResponse()
    token = ""
    seen: set[str] = set()
    while True:
        wanted = None if limit is None else limit - len(collected.budgets)
        request = admin_pb2.ListBudgetsRequest(
            page_size=0 if wanted is None else min(wanted, MAX_PAGE_SIZE),  # 0: server default
            page_token=token,
            state=state,
        )
        page = _invoke(ctx, ctx.admin.ListBudgets, request)
        collected.budgets.extend(page.budgets if wanted is None else page.budgets[:wanted])
        token = page.next_page_token
        if not token or (limit is not None and len(collected.budgets) >= limit):
            break
        if token in seen:
            raise CtlError(f"the server repeated page token {token!r}; listing aborted", ExitCode.ERROR)
        seen.add(token)
    collected.next_page_token = token
    text = render.budgets_table(collected.budgets, more=bool(token))
    return _outcome(collected, text, ExitCode.OK)


# Budgets per Audit call when auditing many: each page is one round of pipelined reads at the center.
AUDIT_PAGE = 500


def audit(ctx: Context, args: argparse.Namespace) -> Outcome:
    """One budget, or every budget (of --state, after --after, at most --limit) page by page: the
    text of each page is printed as it comes (``ctx.stream``), the summary at the end."""
    if args.budget_id:
        if args.state or args.after or args.limit:
            raise CtlError("--state, --after and --limit audit many budgets: not with BUDGET", ExitCode.USAGE)
        response = _invoke(ctx, ctx.admin.Audit, admin_pb2.AuditRequest(budget_id=args.budget_id))
        return _audit_outcome(response, render.audit_text(response))
    limit: int | None = args.limit
    collected = admin_pb2.AuditResponse(balanced=True)
    token: str = args.after or ""
    started = time.monotonic()
    while True:
        wanted = AUDIT_PAGE if limit is None else min(AUDIT_PAGE, limit - len(collected.budgets))
        request = admin_pb2.AuditRequest(
            page_size=wanted,
            page_token=token,
            state=parse.STATES[args.state] if args.state else common_pb2.BUDGET_STATE_UNSPECIFIED,
        )
        page = _invoke(ctx, ctx.admin.Audit, request)
        collected.budgets.extend(page.budgets)
        collected.balanced = collected.balanced and page.balanced
        for budget in page.budgets:
            ctx.stream(render.budget_audit_text(budget))
        token = page.next_page_token
        if not token or (limit is not None and len(collected.budgets) >= limit):
            break
        count = len(collected.budgets)
        bad = sum(1 for b in collected.budgets if not render.budget_audit_balanced(b))
        rate = count / max(time.monotonic() - started, 1e-9)
        ctx.progress(f"audit: {count:,} budgets so far, {bad:,} not balanced, {rate:,.0f} budgets/s")
    collected.next_page_token = token
    return _audit_outcome(collected, render.audit_summary(collected, more=bool(token)))


def _audit_outcome(response: admin_pb2.AuditResponse, text: str) -> Outcome:
    if render.audit_balanced(response):
        exit_code = ExitCode.OK
    elif all(b.unsettled or render.budget_audit_balanced(b) for b in response.budgets):
        exit_code = ExitCode.UNAVAILABLE  # no mismatch found, but a busy budget: try again
    else:
        exit_code = ExitCode.AUDIT_MISMATCH
    return _outcome(response, text, exit_code)


def settle(ctx: Context, args: argparse.Namespace) -> Outcome:
    if args.consumed is None and not args.show:
        raise CtlError(
            "give --consumed N, or --show to see what is known and the bounds on N", ExitCode.USAGE
        )
    request = admin_pb2.SettleRequest(
        budget_id=args.budget_id,
        holder=args.holder,
        consumed=args.consumed or 0,
        actor=ctx.actor,
        reason=args.reason,
        dry_run=args.show,
    )
    response = _invoke(ctx, ctx.admin.Settle, request)
    text = render.known_text(response) if args.show else render.settle_text(response)
    return _outcome(response, text, for_result(response.code))


# ---------------------------------------------------------------------------------------------
# Quota


def deduct(ctx: Context, args: argparse.Namespace) -> Outcome:
    request_id, note = _request_id(args.request_id)
    request = common_pb2.DeductRequest(budget_id=args.budget_id, request_id=request_id, amount=args.amount)
    response = _invoke(ctx, ctx.quota.Deduct, request, note)
    # Always show the key that was used: it is what a retry or a return needs.
    response.request_id = response.request_id or request_id
    return _outcome(response, render.deduct_text(response), for_result(response.code))


def return_(ctx: Context, args: argparse.Namespace) -> Outcome:
    request_id, note = _request_id(args.request_id)
    request = common_pb2.ReturnRequest(
        budget_id=args.budget_id,
        request_id=request_id,
        deduction_id=args.deduction_id,
        amount=args.amount,
    )
    response = _invoke(ctx, ctx.quota.Return, request, note)
    response.request_id = response.request_id or request_id
    return _outcome(response, render.return_text(response), for_result(response.code))


def reserve(ctx: Context, args: argparse.Namespace) -> Outcome:
    request_id, note = _request_id(args.request_id)
    request = common_pb2.ReserveRequest(
        budget_id=args.budget_id,
        request_id=request_id,
        amount=args.amount,
        ttl_ms=args.ttl_ms,
    )
    response = _invoke(ctx, ctx.quota.Reserve, request, note)
    # The reservation id is the reserve's request id: confirm and cancel need it.
    response.request_id = response.request_id or request_id
    return _outcome(response, render.reserve_text(response), for_result(response.code))


def confirm(ctx: Context, args: argparse.Namespace) -> Outcome:
    request = common_pb2.ConfirmRequest(
        budget_id=args.budget_id,
        reservation_id=args.reservation_id,
        amount=args.amount,
    )
    response = _invoke(ctx, ctx.quota.Confirm, request)
    return _outcome(response, render.confirm_text(response), for_result(response.code))


def cancel(ctx: Context, args: argparse.Namespace) -> Outcome:
    request = common_pb2.CancelRequest(budget_id=args.budget_id, reservation_id=args.reservation_id)
    response = _invoke(ctx, ctx.quota.Cancel, request)
    return _outcome(response, render.cancel_text(response), for_result(response.code))


def balance(ctx: Context, args: argparse.Namespace) -> Outcome:
    response = _invoke(ctx, ctx.quota.GetBalance, common_pb2.GetBalanceRequest(budget_id=args.budget_id))
    return _outcome(response, render.balance_text(response), ExitCode.OK)
