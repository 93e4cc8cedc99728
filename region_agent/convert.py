"""Conversions between the wire messages and the agent's own values (pure)."""

from __future__ import annotations

from typing import cast

from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from quota_rules.modes import Mode
from quota_rules.results import result_code
from quota_rules.usage import usage_from_pb
from region_agent.core.records import Answer
from region_agent.core.slices import Holding, State

# MODE_UNSPECIFIED is the wire's "not set", not an allocation mode: None (served as NORMAL).
_MODES: dict[pb.Mode, Mode | None] = {
    pb.MODE_UNSPECIFIED: None,
    pb.MODE_NORMAL: Mode.NORMAL,
    pb.MODE_SCARCE: Mode.SCARCE,
    pb.MODE_CENTRAL: Mode.CENTRAL,
}
_STATES = {
    pb.BUDGET_STATE_UNSPECIFIED: State.UNSPECIFIED,
    pb.BUDGET_STATE_ACTIVE: State.ACTIVE,
    pb.BUDGET_STATE_PAUSED: State.PAUSED,
    pb.BUDGET_STATE_CLOSED: State.CLOSED,
}
MODE_PB = {v: k for k, v in _MODES.items()}
STATE_PB = {v: k for k, v in _STATES.items()}


def holding_from_pb(h: spb.AgentHolding) -> Holding:
    # An enum value this agent does not know is treated as the most careful one it does.
    return Holding(
        budget_id=h.budget_id,
        version=h.version,
        balance=h.balance,
        applied=usage_from_pb(h.applied),
        lease_ms=h.lease_ms,
        mode=_MODES.get(h.mode, Mode.CENTRAL),
        state=_STATES.get(h.state, State.UNSPECIFIED),
        lost=h.lost,
        sold_out=h.availability.sold_out if h.HasField("availability") else None,
        availability=h.availability.version,
    )


_CODE_VALUES = {
    name.removeprefix("RESULT_CODE_"): cast(pb.ResultCode, v) for name, v in pb.ResultCode.items()
}
_CODE_NAMES: dict[int, str] = {value: name for name, value in _CODE_VALUES.items()}


def code_name(code: int) -> str:
    """'OK', 'INSUFFICIENT', ... for a ResultCode value."""
    name = _CODE_NAMES.get(code)
    return pb.ResultCode.Name(code).removeprefix("RESULT_CODE_") if name is None else name


def code_value(name: str) -> pb.ResultCode:
    """The ResultCode value of a short code name (``wire_code`` as a number: quicker to set)."""
    value = _CODE_VALUES.get(name)
    if value is None:
        raise ValueError(f"unknown result code {name}")
    return value


def wire_code(name: str) -> str:
    """The enum value name a response takes for a short code name."""
    return result_code(name)


def answer_of(response: pb.DeductResponse | pb.ReturnResponse | pb.ReserveResponse) -> Answer:
    """The center's answer to a forwarded request, to remember for retries here."""
    if isinstance(response, pb.ReturnResponse):
        return Answer(
            code_name(response.code), response.amount, response.message, refundable=response.refundable
        )
    if isinstance(response, pb.ReserveResponse):
        return Answer(
            code_name(response.code), response.amount, response.message, expires_at_ms=response.expires_at_ms
        )
    return Answer(code_name(response.code), response.amount, response.message)
