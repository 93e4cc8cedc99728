"""Pure rendering of responses: human text (key: value lines, aligned tables) and JSON dicts.

No I/O here. JSON keeps integers as integers (``json_format.MessageToDict`` would
turn int64 into strings), shows enums by their short name (``OK``, ``ACTIVE``,
``PROGRESSIVE``: the ``RESULT_CODE_``-style prefix removed), unset message fields
as ``null`` and timestamps as ISO 8601 UTC strings. Every field is present, zero or
not, so the shape of each command's output is stable.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeAlias

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2, common_pb2

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonDict: TypeAlias = dict[str, JsonValue]
Cell: TypeAlias = str | int

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNSPECIFIED = "UNSPECIFIED"

# ---------------------------------------------------------------------------------------------
# Scalars


class _EnumValue(Protocol):
    @property
    def name(self) -> str: ...


class _EnumType(Protocol):
    """What is read of an enum descriptor.

    protobuf has two descriptor classes (pure Python and upb), typed separately;
    both satisfy this.
    """

    @property
    def values_by_number(self) -> Mapping[int, _EnumValue]: ...


def enum_label(enum: _EnumType, number: int) -> str:
    """``RESULT_CODE_INSUFFICIENT`` -> ``INSUFFICIENT``; unknown numbers -> ``UNKNOWN(n)``.

    The prefix is the one of the enum's zero value (``RESULT_CODE_UNSPECIFIED``), as
    the proto style guide requires of every enum.
    """
    value = enum.values_by_number.get(number)
    if value is None:
        return f"UNKNOWN({number})"
    zero = enum.values_by_number.get(0)
    prefix = zero.name.removesuffix(_UNSPECIFIED) if zero is not None else ""
    return value.name.removeprefix(prefix) if prefix.endswith("_") else value.name


def code_label(code: int) -> str:
    return enum_label(common_pb2.ResultCode.DESCRIPTOR, code)


def state_label(state: int) -> str:
    return enum_label(common_pb2.BudgetState.DESCRIPTOR, state)


def mode_label(mode: int) -> str:
    return enum_label(common_pb2.Mode.DESCRIPTOR, mode)


def strategy_label(strategy: int) -> str:
    return enum_label(common_pb2.Strategy.DESCRIPTOR, strategy)


def timestamp_text(ts: Timestamp) -> str:
    """ISO 8601 in UTC with a ``Z``; fractional seconds only when present (nanosecond exact)."""
    moment = _EPOCH + timedelta(seconds=ts.seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.nanos:
        text += "." + f"{ts.nanos:09d}".rstrip("0")
    return text + "Z"


def millis_text(ms: int) -> str:
    """Unix milliseconds as ISO 8601 UTC; 0 (unset) as ``-``."""
    if ms == 0:
        return "-"
    return timestamp_text(Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000))


# ---------------------------------------------------------------------------------------------
# JSON


def to_json(message: Message) -> JsonDict:
    """Every field of ``message`` by its proto name; see the module docstring for the rules."""
    out: JsonDict = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        entry = field.message_type
        if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
            value_enum = entry.fields_by_name["value"].enum_type
            out[field.name] = {str(key): _json_value(value[key], value_enum) for key in value}
        elif field.is_repeated:
            out[field.name] = [_json_value(item, field.enum_type) for item in value]
        elif entry is not None and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _json_value(value, field.enum_type)
    return out


def _json_value(value: object, enum: _EnumType | None) -> JsonValue:
    if isinstance(value, Timestamp):
        return timestamp_text(value)
    if isinstance(value, Message):
        return to_json(value)
    if enum is not None and isinstance(value, int):
        return enum_label(enum, value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot render a value of type {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Text building blocks


def format_fields(pairs: Sequence[tuple[str, Cell]]) -> str:
    """``key: value`` lines with the values aligned."""
    if not pairs:
        return ""
    width = max(len(key) for key, _ in pairs) + 2
    return "\n".join(f"{key + ':':<{width}}{value}".rstrip() for key, value in pairs)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, indent: str = "") -> str:
    """An aligned table: integer columns right-aligned, text left-aligned, two spaces apart."""
    body = [list(row) for row in rows]
    columns = len(headers)
    if any(len(row) != columns for row in body):
        raise ValueError("every row must have one cell per header")
    numeric = [bool(body) and all(isinstance(row[i], int) for row in body) for i in range(columns)]
    widths = [max([len(headers[i])] + [len(str(row[i])) for row in body]) for i in range(columns)]

    def line(cells: Sequence[Cell]) -> str:
        parts = [
            str(cell).rjust(widths[i]) if numeric[i] else str(cell).ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in body)])


def _result_pairs(code: int, message: str) -> list[tuple[str, Cell]]:
    pairs: list[tuple[str, Cell]] = [("result", code_label(code))]
    if message:
        pairs.append(("message", message))
    return pairs


def _join(*blocks: str) -> str:
    return "\n".join(block for block in blocks if block)


# ---------------------------------------------------------------------------------------------
# Admin


def budget_pairs(budget: admin_pb2.Budget) -> list[tuple[str, Cell]]:
    policy = budget.policy
    return [
        ("id", budget.budget_id),
        ("unit", budget.unit),
        ("state", state_label(budget.state)),
        ("mode", mode_label(budget.mode)),
        ("total", budget.total),
        ("main", budget.main),
        ("held", budget.held),
        ("in flight", budget.in_flight),
        ("reserved", budget.reserved),
        ("in doubt", budget.in_doubt),
        ("consumed", budget.consumed),
        ("available", budget.available),
        ("strategy", strategy_label(policy.strategy)),
        ("sub buckets", policy.sub_buckets or "default"),
        ("min slice", policy.min_slice or "default"),
        ("max slice", policy.max_slice or "default"),
        ("valid from", timestamp_text(budget.valid_from) if budget.HasField("valid_from") else "-"),
        ("valid until", timestamp_text(budget.valid_until) if budget.HasField("valid_until") else "-"),
        ("created at", timestamp_text(budget.created_at) if budget.HasField("created_at") else "-"),
    ]


def budget_text(budget: admin_pb2.Budget) -> str:
    return format_fields(budget_pairs(budget))


def budget_response_text(response: admin_pb2.BudgetResponse, *, show_result: bool = True) -> str:
    """A create / top-up / pause / resume / close / get answer."""
    pairs = _result_pairs(response.code, response.message) if show_result else []
    if not show_result and response.message:
        pairs.append(("message", response.message))
    if response.HasField("budget"):
        pairs.extend(budget_pairs(response.budget))
    return format_fields(pairs)


def budgets_table(budgets: Sequence[admin_pb2.Budget], *, more: bool = False) -> str:
    """The ``list`` table; ``more`` when --limit cut the listing short."""
    if not budgets:
        return "no budgets"
    table = format_table(
        ["BUDGET", "STATE", "MODE", "UNIT", "TOTAL", "CONSUMED", "RESERVED", "IN DOUBT", "AVAILABLE"],
        (
            [
                b.budget_id,
                state_label(b.state),
                mode_label(b.mode),
                b.unit,
                b.total,
                b.consumed,
                b.reserved,
                b.in_doubt,
                b.available,
            ]
            for b in budgets
        ),
    )
    return _join(table, "(more budgets exist: raise --limit to see them)" if more else "")


def identity_sum(audit: admin_pb2.BudgetAudit) -> int:
    return audit.main + audit.held + audit.in_flight + audit.reserved + audit.in_doubt + audit.consumed


def budget_audit_balanced(audit: admin_pb2.BudgetAudit) -> bool:
    """The center's verdict, and the identity must add up as printed."""
    return audit.balanced and identity_sum(audit) == audit.total


def audit_balanced(response: admin_pb2.AuditResponse) -> bool:
    return response.balanced and all(budget_audit_balanced(b) for b in response.budgets)


def audit_identity(audit: admin_pb2.BudgetAudit) -> str:
    """``total 10000 = main 6000 + held 1500 + ... + consumed 2500  BALANCED``."""
    verdict = "BALANCED" if budget_audit_balanced(audit) else "UNSETTLED" if audit.unsettled else "MISMATCH"
    return (
        f"total {audit.total} = main {audit.main} + held {audit.held} + in flight {audit.in_flight}"
        f" + reserved {audit.reserved} + in doubt {audit.in_doubt} + consumed {audit.consumed}  {verdict}"
    )


def budget_audit_text(audit: admin_pb2.BudgetAudit) -> str:
    lines = [f"budget {audit.budget_id}", "  " + audit_identity(audit)]
    parts = identity_sum(audit)
    if audit.unsettled:
        lines.append(
            f"  unsettled: {', '.join(audit.unsettled)} kept moving budget while read; the numbers are not"
            " of one instant (try again)"
        )
    elif parts != audit.total:
        lines.append(f"  mismatch: the parts sum to {parts}, not the total {audit.total}")
    lines.extend(f"  mismatch: {text}" for text in audit.mismatches)
    if audit.holders:
        lines.append(
            format_table(
                ["HOLDER", "OBSERVED", "LEDGERED", "BALANCE", "CONSUMED", "RESERVED", "IN DOUBT"],
                (
                    [h.holder, h.observed, h.ledgered, h.balance, h.consumed, h.reserved, h.in_doubt]
                    for h in audit.holders
                ),
                indent="  ",
            )
        )
    else:
        lines.append("  no holders")
    return "\n".join(lines)


def audit_text(response: admin_pb2.AuditResponse) -> str:
    blocks = [budget_audit_text(b) for b in response.budgets]
    return "\n".join([*blocks, audit_summary(response)])


def audit_summary(response: admin_pb2.AuditResponse, *, more: bool = False) -> str:
    """The last line of an audit: its verdict over the budgets audited."""
    bad = sum(1 for b in response.budgets if not budget_audit_balanced(b))
    count = len(response.budgets)
    if audit_balanced(response):
        summary = f"audit: BALANCED ({count} budget{'' if count == 1 else 's'})"
    else:
        summary = f"audit: MISMATCH ({bad} of {count} budget{'' if count == 1 else 's'})"
    if more:
        summary += f"; more budgets exist: go on with --after {response.budgets[-1].budget_id}"
    return summary


def settle_text(response: admin_pb2.SettleResponse) -> str:
    return format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("holder", response.holder),
            ("settled", response.settled),
            ("consumed", response.consumed),
            ("returned to main", response.returned_to_main),
        ]
    )


def known_text(response: admin_pb2.SettleResponse) -> str:
    """What a dry-run settle found out, and the bounds on --consumed."""
    log = (
        "complete"
        if response.log_complete
        else f"incomplete (waiting for {', '.join(response.waiting_for)})"
        if response.waiting_for
        else "not used"
    )
    return format_fields(
        [
            ("budget", response.budget_id),
            ("holder", response.holder),
            ("in doubt", response.in_doubt),
            ("booked", response.booked),
            ("spend log shows", response.logged),
            ("spend log", log),
            ("--consumed", f"between {response.at_least} and {response.at_most}"),
            ("note", response.note),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Quota


def deduct_text(response: common_pb2.DeductResponse) -> str:
    fields = format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("request id", response.request_id),
            ("amount", response.amount),
        ]
    )
    if not response.unreachable:
        return fields
    table = format_table(
        ["HOLDER", "AMOUNT", "REACHABLE"],
        ([h.holder, h.amount, "yes" if h.reachable else "no"] for h in response.unreachable),
        indent="  ",
    )
    return _join(fields, "unreachable holders:", table)


def return_text(response: common_pb2.ReturnResponse) -> str:
    return format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("request id", response.request_id),
            ("deduction id", response.deduction_id),
            ("amount", response.amount),
            ("refundable", response.refundable),
        ]
    )


def reserve_text(response: common_pb2.ReserveResponse) -> str:
    return format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("reservation id", response.request_id),
            ("amount", response.amount),
            ("expires at", millis_text(response.expires_at_ms)),
        ]
    )


def confirm_text(response: common_pb2.ConfirmResponse) -> str:
    return format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("reservation id", response.reservation_id),
            ("amount", response.amount),
            ("released", response.released),
        ]
    )


def cancel_text(response: common_pb2.CancelResponse) -> str:
    return format_fields(
        [
            *_result_pairs(response.code, response.message),
            ("budget", response.budget_id),
            ("reservation id", response.reservation_id),
            ("released", response.released),
        ]
    )


def balance_text(response: common_pb2.GetBalanceResponse) -> str:
    return format_fields(
        [
            ("budget", response.budget_id),
            ("unit", response.unit),
            ("state", state_label(response.state)),
            ("mode", mode_label(response.mode)),
            ("total", response.total),
            ("available", response.available),
            ("consumed", response.consumed),
            ("reserved", response.reserved),
            ("in doubt", response.in_doubt),
            ("held here", response.held_here),
        ]
    )
