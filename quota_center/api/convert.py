"""Conversions between protobuf messages and the center's own values (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from quota_center.budgets.admin import BudgetView
from quota_center.budgets.audit import AuditReport
from quota_rules.limits import InvalidInput
from quota_rules.modes import Mode, mode_for
from quota_rules.policy import Policy, from_json

_STATES = {
    "active": pb.BUDGET_STATE_ACTIVE,
    "paused": pb.BUDGET_STATE_PAUSED,
    "closed": pb.BUDGET_STATE_CLOSED,
}
_STRATEGIES = {
    pb.STRATEGY_UNSPECIFIED: "progressive",
    pb.STRATEGY_PROGRESSIVE: "progressive",
    pb.STRATEGY_STATIC: "static",
    pb.STRATEGY_CENTRAL: "central",
}


def state_name(value: int) -> str | None:
    """'active', 'paused', 'closed' for a BudgetState; None for UNSPECIFIED; error otherwise."""
    if value == pb.BUDGET_STATE_UNSPECIFIED:
        return None
    for name, number in _STATES.items():
        if number == value:
            return name
    raise InvalidInput(f"unknown budget state {value}")


def policy_from_pb(p: apb.SlicePolicy) -> Policy:
    if p.strategy not in _STRATEGIES:
        raise InvalidInput(f"unknown strategy {p.strategy}")
    return Policy(
        strategy=_STRATEGIES[p.strategy],
        sub_buckets=p.sub_buckets,
        min_slice=p.min_slice,
        max_slice=p.max_slice,
        refill_horizon_ms=p.refill_horizon_ms,
        low_watermark_pct=p.low_watermark_pct,
        scarcity_threshold=p.scarcity_threshold,
        central_threshold=p.central_threshold,
        lease_ms=p.lease_ms,
    )


def policy_to_pb(p: Policy) -> apb.SlicePolicy:
    strategy = {v: k for k, v in _STRATEGIES.items() if k != pb.STRATEGY_UNSPECIFIED}[p.strategy]
    return apb.SlicePolicy(
        strategy=strategy,
        sub_buckets=p.sub_buckets,
        min_slice=p.min_slice,
        max_slice=p.max_slice,
        refill_horizon_ms=p.refill_horizon_ms,
        low_watermark_pct=p.low_watermark_pct,
        scarcity_threshold=p.scarcity_threshold,
        central_threshold=p.central_threshold,
        lease_ms=p.lease_ms,
    )


def time_from_pb(ts: Timestamp, present: bool, field: str) -> datetime | None:
    """A Timestamp field as a datetime; InvalidInput for one outside 0001-01-01..9999-12-31."""
    if not present:
        return None
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"{field} {ts.seconds} s {ts.nanos} ns is not a time between 0001-01-01 and 9999-12-31: {exc}"
        ) from None


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


_MODES = {
    Mode.NORMAL: pb.MODE_NORMAL,
    Mode.SCARCE: pb.MODE_SCARCE,
    Mode.CENTRAL: pb.MODE_CENTRAL,
}


def _mode(view: BudgetView) -> pb.Mode:
    return _MODES[mode_for(from_json(view.row.policy), view.report.main + view.report.held)]


def budget_to_pb(view: BudgetView) -> apb.Budget:
    row, r = view.row, view.report
    return apb.Budget(
        budget_id=row.budget_id,
        unit=row.unit,
        total=r.total,  # of the snapshot the other numbers are from, not of the row read before it
        state=_STATES[row.state],
        valid_from=_ts(row.valid_from),
        valid_until=_ts(row.valid_until),
        policy=policy_to_pb(from_json(row.policy)),
        created_at=_ts(row.created_at),
        mode=_mode(view),
        main=r.main,
        held=r.held,
        in_flight=r.in_flight,
        reserved=r.reserved,
        in_doubt=r.in_doubt,
        consumed=r.consumed,
        available=r.available,
        unsettled=list(r.unsettled),
    )


def balance_response(view: BudgetView) -> pb.GetBalanceResponse:
    row, r = view.row, view.report
    return pb.GetBalanceResponse(
        budget_id=row.budget_id,
        unit=row.unit,
        state=_STATES[row.state],
        mode=_mode(view),
        total=r.total,
        available=r.available,
        consumed=r.consumed,
        reserved=r.reserved,
        in_doubt=r.in_doubt,
        held_here=r.main + r.held,
    )


def audit_to_pb(r: AuditReport) -> apb.BudgetAudit:
    return apb.BudgetAudit(
        budget_id=r.budget_id,
        total=r.total,
        main=r.main,
        held=r.held,
        in_flight=r.in_flight,
        reserved=r.reserved,
        in_doubt=r.in_doubt,
        consumed=r.consumed,
        balanced=r.balanced,
        holders=[
            apb.HolderAudit(
                holder=h.holder,
                observed=h.observed,
                ledgered=h.ledgered,
                balance=h.balance,
                consumed=h.consumed,
                reserved=h.reserved,
                in_doubt=h.in_doubt,
            )
            for h in r.holders
        ],
        mismatches=list(r.mismatches),
        unsettled=list(r.unsettled),
    )
