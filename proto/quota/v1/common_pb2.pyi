from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResultCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_CODE_UNSPECIFIED: _ClassVar[ResultCode]
    RESULT_CODE_OK: _ClassVar[ResultCode]
    RESULT_CODE_INSUFFICIENT: _ClassVar[ResultCode]
    RESULT_CODE_EXISTS: _ClassVar[ResultCode]
    RESULT_CODE_CONFLICT: _ClassVar[ResultCode]
    RESULT_CODE_EXPIRED: _ClassVar[ResultCode]
    RESULT_CODE_BUDGET_PAUSED: _ClassVar[ResultCode]
    RESULT_CODE_BUDGET_CLOSED: _ClassVar[ResultCode]
    RESULT_CODE_BUDGET_OUTSIDE_WINDOW: _ClassVar[ResultCode]
    RESULT_CODE_EXCEEDS_DEDUCTED: _ClassVar[ResultCode]
    RESULT_CODE_UNKNOWN_REQUEST: _ClassVar[ResultCode]
    RESULT_CODE_CANCELLED: _ClassVar[ResultCode]
    RESULT_CODE_CONFIRMED: _ClassVar[ResultCode]
    RESULT_CODE_UNSETTLED: _ClassVar[ResultCode]

class BudgetState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUDGET_STATE_UNSPECIFIED: _ClassVar[BudgetState]
    BUDGET_STATE_ACTIVE: _ClassVar[BudgetState]
    BUDGET_STATE_PAUSED: _ClassVar[BudgetState]
    BUDGET_STATE_CLOSED: _ClassVar[BudgetState]

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_PROGRESSIVE: _ClassVar[Strategy]
    STRATEGY_STATIC: _ClassVar[Strategy]
    STRATEGY_CENTRAL: _ClassVar[Strategy]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_NORMAL: _ClassVar[Mode]
    MODE_SCARCE: _ClassVar[Mode]
    MODE_CENTRAL: _ClassVar[Mode]
RESULT_CODE_UNSPECIFIED: ResultCode
RESULT_CODE_OK: ResultCode
RESULT_CODE_INSUFFICIENT: ResultCode
RESULT_CODE_EXISTS: ResultCode
RESULT_CODE_CONFLICT: ResultCode
RESULT_CODE_EXPIRED: ResultCode
RESULT_CODE_BUDGET_PAUSED: ResultCode
RESULT_CODE_BUDGET_CLOSED: ResultCode
RESULT_CODE_BUDGET_OUTSIDE_WINDOW: ResultCode
RESULT_CODE_EXCEEDS_DEDUCTED: ResultCode
RESULT_CODE_UNKNOWN_REQUEST: ResultCode
RESULT_CODE_CANCELLED: ResultCode
RESULT_CODE_CONFIRMED: ResultCode
RESULT_CODE_UNSETTLED: ResultCode
BUDGET_STATE_UNSPECIFIED: BudgetState
BUDGET_STATE_ACTIVE: BudgetState
BUDGET_STATE_PAUSED: BudgetState
BUDGET_STATE_CLOSED: BudgetState
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_PROGRESSIVE: Strategy
STRATEGY_STATIC: Strategy
STRATEGY_CENTRAL: Strategy
MODE_UNSPECIFIED: Mode
MODE_NORMAL: Mode
MODE_SCARCE: Mode
MODE_CENTRAL: Mode

class Holding(_message.Message):
    __slots__ = ("holder", "amount", "reachable")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    holder: str
    amount: int
    reachable: bool
    def __init__(self, holder: _Optional[str] = ..., amount: _Optional[int] = ..., reachable: _Optional[bool] = ...) -> None: ...

class DeductRequest(_message.Message):
    __slots__ = ("budget_id", "request_id", "amount")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    amount: int
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class DeductResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "request_id", "amount", "unreachable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    code: ResultCode
    message: str
    budget_id: str
    request_id: str
    amount: int
    unreachable: _containers.RepeatedCompositeFieldContainer[Holding]
    def __init__(self, code: _Optional[_Union[ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., amount: _Optional[int] = ..., unreachable: _Optional[_Iterable[_Union[Holding, _Mapping]]] = ...) -> None: ...

class DeductBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[DeductRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[DeductRequest, _Mapping]]] = ...) -> None: ...

class DeductBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DeductResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[DeductResponse, _Mapping]]] = ...) -> None: ...

class ReturnRequest(_message.Message):
    __slots__ = ("budget_id", "request_id", "deduction_id", "amount")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    deduction_id: str
    amount: int
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., deduction_id: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class ReturnResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "request_id", "deduction_id", "amount", "refundable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUCTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFUNDABLE_FIELD_NUMBER: _ClassVar[int]
    code: ResultCode
    message: str
    budget_id: str
    request_id: str
    deduction_id: str
    amount: int
    refundable: int
    def __init__(self, code: _Optional[_Union[ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., deduction_id: _Optional[str] = ..., amount: _Optional[int] = ..., refundable: _Optional[int] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("budget_id", "request_id", "amount", "ttl_ms")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    amount: int
    ttl_ms: int
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., amount: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "request_id", "amount", "expires_at_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    code: ResultCode
    message: str
    budget_id: str
    request_id: str
    amount: int
    expires_at_ms: int
    def __init__(self, code: _Optional[_Union[ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., amount: _Optional[int] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class ConfirmRequest(_message.Message):
    __slots__ = ("budget_id", "reservation_id", "amount")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    reservation_id: str
    amount: int
    def __init__(self, budget_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class ConfirmResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "reservation_id", "amount", "released")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    code: ResultCode
    message: str
    budget_id: str
    reservation_id: str
    amount: int
    released: int
    def __init__(self, code: _Optional[_Union[ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., amount: _Optional[int] = ..., released: _Optional[int] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("budget_id", "reservation_id")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    reservation_id: str
    def __init__(self, budget_id: _Optional[str] = ..., reservation_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("code", "message", "budget_id", "reservation_id", "released")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    code: ResultCode
    message: str
    budget_id: str
    reservation_id: str
    released: int
    def __init__(self, code: _Optional[_Union[ResultCode, str]] = ..., message: _Optional[str] = ..., budget_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., released: _Optional[int] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("budget_id",)
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    def __init__(self, budget_id: _Optional[str] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("budget_id", "unit", "state", "mode", "total", "available", "consumed", "reserved", "in_doubt", "held_here")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    HELD_HERE_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    unit: str
    state: BudgetState
    mode: Mode
    total: int
    available: int
    consumed: int
    reserved: int
    in_doubt: int
    held_here: int
    def __init__(self, budget_id: _Optional[str] = ..., unit: _Optional[str] = ..., state: _Optional[_Union[BudgetState, str]] = ..., mode: _Optional[_Union[Mode, str]] = ..., total: _Optional[int] = ..., available: _Optional[int] = ..., consumed: _Optional[int] = ..., reserved: _Optional[int] = ..., in_doubt: _Optional[int] = ..., held_here: _Optional[int] = ...) -> None: ...
