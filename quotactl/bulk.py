"""Budgets to create from a file, read and checked before anything is sent (pure).

``quotactl create --from-file PATH``: CSV with a header row, or JSON Lines (one object per line),
told apart by the extension (``.csv``; ``.jsonl``, ``.ndjson``) or ``--format``. Each row names a
budget with the same fields and rules as ``quotactl create``'s options:

    budget_id,total,unit,sub_buckets,min_slice,max_slice,strategy,valid_from,valid_until,reason

``budget_id`` and ``total`` are required, the rest optional (empty: the server's default). Every
row is checked first; one bad row (or a budget id given twice) and nothing is created, and every
problem is reported with its line number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from quota.v1 import admin_pb2, common_pb2
from quotactl import parse

FIELDS = (
    "budget_id",
    "total",
    "unit",
    "sub_buckets",
    "min_slice",
    "max_slice",
    "strategy",
    "valid_from",
    "valid_until",
    "reason",
)
REQUIRED = ("budget_id", "total")
FORMATS = ("csv", "jsonl")
# Problems listed before the rest are only counted.
MAX_REPORTED = 20


@dataclass(frozen=True)
class Parsed:
    requests: list[tuple[int, admin_pb2.CreateBudgetRequest]]  # (line, request)
    problems: list[str]  # "line N: ..." (the first MAX_REPORTED) and a count of the rest


def format_of(path: str, given: str | None) -> str:
    if given:
        return given
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path!r} from its name: give --format csv or --format jsonl")


def parse_rows(text: str, fmt: str, *, actor: str) -> Parsed:
    """Every row of ``text`` as a CreateBudgetRequest, or the problems that stop the whole file."""
    problems: list[str] = []
    requests: list[tuple[int, admin_pb2.CreateBudgetRequest]] = []
    first_line: dict[str, int] = {}
    for line, row in _rows(text, fmt, problems):
        try:
            request = _request(row, actor)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if request.budget_id in first_line:
            problems.append(
                f"line {line}: budget {request.budget_id} is also on line {first_line[request.budget_id]}"
            )
            continue
        first_line[request.budget_id] = line
        requests.append((line, request))
    if not requests and not problems:
        problems.append("the file names no budget")
    if len(problems) > MAX_REPORTED:
        problems = [*problems[:MAX_REPORTED], f"... and {len(problems) - MAX_REPORTED} more problems"]
    return Parsed(requests, problems)


def _rows(text: str, fmt: str, problems: list[str]) -> Iterable[tuple[int, dict[str, object]]]:
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        unknown = [h for h in header if h not in FIELDS]
        missing = [f for f in REQUIRED if f not in header]
        if unknown or missing:
            problems.append(
                "line 1: the header"
                + (f" has unknown columns {unknown}" if unknown else "")
                + (" and" if unknown and missing else "")
                + (f" lacks {missing}" if missing else "")
                + f" (columns: {', '.join(FIELDS)})"
            )
            return
        for row in reader:
            if None in row:
                problems.append(f"line {reader.line_num}: more values than columns")
                continue
            yield reader.line_num, {k: v for k, v in row.items() if v not in ("", None)}
        return
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        unknown = [k for k in obj if k not in FIELDS]
        if unknown:
            problems.append(f"line {n}: unknown fields {unknown} (fields: {', '.join(FIELDS)})")
            continue
        yield n, {k: v for k, v in obj.items() if v is not None}


def _text(row: dict[str, object], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be text or a whole number, got {value!r}")
    return str(value)


def _request(row: dict[str, object], actor: str) -> admin_pb2.CreateBudgetRequest:
    for name in REQUIRED:
        if row.get(name) is None:
            raise ValueError(f"{name} is missing")
    budget_id = parse.parse_name(_text(row, "budget_id") or "", what="budget id")
    total = parse.parse_amount(_text(row, "total") or "", what="total")
    unit = parse.parse_name(_text(row, "unit") or "unit", what="unit")
    sub = _text(row, "sub_buckets")
    low, high = _text(row, "min_slice"), _text(row, "max_slice")
    min_slice = parse.parse_amount(low, what="min_slice") if low else 0
    max_slice = parse.parse_amount(high, what="max_slice") if high else 0
    if min_slice and max_slice and min_slice > max_slice:
        raise ValueError("min_slice must not exceed max_slice")
    strategy = _text(row, "strategy")
    if strategy is not None and strategy not in parse.STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(parse.STRATEGIES)}, got {strategy!r}")
    policy = admin_pb2.SlicePolicy(
        strategy=parse.STRATEGIES[strategy] if strategy else common_pb2.STRATEGY_UNSPECIFIED,
        sub_buckets=parse.parse_int(sub, what="sub_buckets", minimum=1, maximum=parse.MAX_UINT32)
        if sub
        else 0,
        min_slice=min_slice,
        max_slice=max_slice,
    )
    request = admin_pb2.CreateBudgetRequest(
        budget_id=budget_id,
        unit=unit,
        total=total,
        policy=policy,
        actor=actor,
        reason=_text(row, "reason") or "",
    )
    window: list[Timestamp] = []
    for name, field in (("valid_from", request.valid_from), ("valid_until", request.valid_until)):
        given = _text(row, name)
        if given:
            stamp = parse.parse_timestamp(given)
            field.CopyFrom(stamp)
            window.append(stamp)
    if len(window) == 2 and (window[0].seconds, window[0].nanos) >= (window[1].seconds, window[1].nanos):
        raise ValueError("valid_from must be before valid_until")
    return request
