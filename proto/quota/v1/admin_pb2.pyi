import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from quota.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SlicePolicy(_message.Message):
    __slots__ = ("strategy", "sub_buckets", "min_slice", "max_slice", "refill_horizon_ms", "low_watermark_pct", "scarcity_threshold", "central_threshold", "lease_ms")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SUB_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    MIN_SLICE_FIELD_NUMBER: _ClassVar[int]
    MAX_SLICE_FIELD_NUMBER: _ClassVar[int]
    REFILL_HORIZON_MS_FIELD_NUMBER: _ClassVar[int]
    LOW_WATERMARK_PCT_FIELD_NUMBER: _ClassVar[int]
    SCARCITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CENTRAL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    strategy: _common_pb2.Strategy
    sub_buckets: int
    min_slice: int
    max_slice: int
    refill_horizon_ms: int
    low_watermark_pct: int
    scarcity_threshold: int
    central_threshold: int
    lease_ms: int
    def __init__(self, strategy: _Optional[_Union[_common_pb2.Strategy, str]] = ..., sub_buckets: _Optional[int] = ..., min_slice: _Optional[int] = ..., max_slice: _Optional[int] = ..., refill_horizon_ms: _Optional[int] = ..., low_watermark_pct: _Optional[int] = ..., scarcity_threshold: _Optional[int] = ..., central_threshold: _Optional[int] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("budget_id", "unit", "total", "state", "valid_from", "valid_until", "policy", "created_at", "mode", "main", "held", "in_flight", "reserved", "in_doubt", "consumed", "available", "unsettled")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAIN_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    UNSETTLED_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    unit: str
    total: int
    state: _common_pb2.BudgetState
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    policy: SlicePolicy
    created_at: _timestamp_pb2.Timestamp
    mode: _common_pb2.Mode
    main: int
    held: int
    in_flight: int
    reserved: int
    in_doubt: int
    consumed: int
    available: int
    unsettled: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, budget_id: _Optional[str] = ..., unit: _Optional[str] = ..., total: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.BudgetState, str]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[_Union[SlicePolicy, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., main: _Optional[int] = ..., held: _Optional[int] = ..., in_flight: _Optional[int] = ..., reserved: _Optional[int] = ..., in_doubt: _Optional[int] = ..., consumed: _Optional[int] = ..., available: _Optional[int] = ..., unsettled: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateBudgetRequest(_message.Message):
    __slots__ = ("budget_id", "unit", "total", "valid_from", "valid_until", "policy", "actor", "reason")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    unit: str
    total: int
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    policy: SlicePolicy
    actor: str
    reason: str
    def __init__(self, budget_id: _Optional[str] = ..., unit: _Optional[str] = ..., total: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[_Union[SlicePolicy, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TopUpRequest(_message.Message):
    __slots__ = ("budget_id", "request_id", "amount", "actor", "reason")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    amount: int
    actor: str
    reason: str
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., amount: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ChangeStateRequest(_message.Message):
    __slots__ = ("budget_id", "actor", "reason")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    actor: str
    reason: str
    def __init__(self, budget_id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetBudgetRequest(_message.Message):
    __slots__ = ("budget_id",)
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    def __init__(self, budget_id: _Optional[str] = ...) -> None: ...

class BudgetResponse(_message.Message):
    __slots__ = ("code", "message", "budget")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    code: _common_pb2.ResultCode
    message: str
    budget: Budget
    def __init__(self, code: _Optional[_Union[_common_pb2.ResultCode, str]] = ..., message: _Optional[str] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _common_pb2.BudgetState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.BudgetState, str]] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets", "next_page_token")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    next_page_token: str
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("budget_id", "page_size", "page_token", "state")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    page_size: int
    page_token: str
    state: _common_pb2.BudgetState
    def __init__(self, budget_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.BudgetState, str]] = ...) -> None: ...

class HolderAudit(_message.Message):
    __slots__ = ("holder", "observed", "ledgered", "balance", "consumed", "reserved", "in_doubt")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    LEDGERED_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    holder: str
    observed: int
    ledgered: int
    balance: int
    consumed: int
    reserved: int
    in_doubt: int
    def __init__(self, holder: _Optional[str] = ..., observed: _Optional[int] = ..., ledgered: _Optional[int] = ..., balance: _Optional[int] = ..., consumed: _Optional[int] = ..., reserved: _Optional[int] = ..., in_doubt: _Optional[int] = ...) -> None: ...

class BudgetAudit(_message.Message):
    __slots__ = ("budget_id", "total", "main", "held", "in_flight", "reserved", "in_doubt", "consumed", "balanced", "holders", "mismatches", "unsettled")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MAIN_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    UNSETTLED_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    total: int
    main: int
    held: int
    in_flight: int
    reserved: int
    in_doubt: int
    consumed: int
    balanced: bool
    holders: _containers.RepeatedCompositeFieldContainer[HolderAudit]
    mismatches: _containers.RepeatedScalarFieldContainer[str]
    unsettled: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, budget_id: _Optional[str] = ..., total: _Optional[int] = ..., main: _Optional[int] = ..., held: _Optional[int] = ..., in_flight: _Optional[int] = ..., reserved: _Optional[int] = ..., in_doubt: _Optional[int] = ..., consumed: _Optional[int] = ..., balanced: _Optional[bool] = ..., holders: _Optional[_Iterable[_Union[HolderAudit, _Mapping]]] = ..., mismatches: _Optional[_Iterable[str]] = ..., unsettled: _Optional[_Iterable[str]] = ...) -> None: ...

class AuditResponse(_message.Message):
    __slots__ = ("budgets", "balanced", "next_page_token")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[BudgetAudit]
    balanced: bool
    next_page_token: str
    def __init__(self, budgets: _Optional[_Iterable[_Union[BudgetAudit, _Mapping]]] = ..., balanced: _Optional[bool] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SettleRequest(_message.Message):
    __slots__ = ("budget_id", "holder", "consumed", "actor", "reason", "dry_run")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    holder: str
    consumed: int
    actor: str
    reason: str
    dry_run: bool
    def __init__(self, budget_id: _Optional[str] = ..., holder: _Optional[str] = ..., consumed: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class SettleResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "holder", "settled", "consumed", "returned_to_main", "in_doubt", "booked", "logged", "log_complete", "waiting_for", "at_least", "at_most", "note")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RETURNED_TO_MAIN_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    BOOKED_FIELD_NUMBER: _ClassVar[int]
    LOGGED_FIELD_NUMBER: _ClassVar[int]
    LOG_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    AT_MOST_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    code: _common_pb2.ResultCode
    message: str
    budget_id: str
    holder: str
    settled: int
    consumed: int
    returned_to_main: int
    in_doubt: int
    booked: int
    logged: int
    log_complete: bool
    waiting_for: _containers.RepeatedScalarFieldContainer[str]
    at_least: int
    at_most: int
    note: str
    def __init__(self, code: _Optional[_Union[_common_pb2.ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., holder: _Optional[str] = ..., settled: _Optional[int] = ..., consumed: _Optional[int] = ..., returned_to_main: _Optional[int] = ..., in_doubt: _Optional[int] = ..., booked: _Optional[int] = ..., logged: _Optional[int] = ..., log_complete: _Optional[bool] = ..., waiting_for: _Optional[_Iterable[str]] = ..., at_least: _Optional[int] = ..., at_most: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...
