from quota.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("hello", "slice_request", "heartbeat", "usage", "reclaim_answer", "record_answer")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    SLICE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_ANSWER_FIELD_NUMBER: _ClassVar[int]
    RECORD_ANSWER_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    slice_request: SliceRequest
    heartbeat: Heartbeat
    usage: Usage
    reclaim_answer: ReclaimAnswer
    record_answer: RecordAnswer
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., slice_request: _Optional[_Union[SliceRequest, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., reclaim_answer: _Optional[_Union[ReclaimAnswer, _Mapping]] = ..., record_answer: _Optional[_Union[RecordAnswer, _Mapping]] = ...) -> None: ...

class CenterMessage(_message.Message):
    __slots__ = ("welcome", "grant", "lease", "reclaim", "error", "holding", "record_query", "availability")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    RECORD_QUERY_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    grant: Grant
    lease: LeaseRenewal
    reclaim: ReclaimOrder
    error: SessionError
    holding: AgentHolding
    record_query: RecordQuery
    availability: Availability
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ..., lease: _Optional[_Union[LeaseRenewal, _Mapping]] = ..., reclaim: _Optional[_Union[ReclaimOrder, _Mapping]] = ..., error: _Optional[_Union[SessionError, _Mapping]] = ..., holding: _Optional[_Union[AgentHolding, _Mapping]] = ..., record_query: _Optional[_Union[RecordQuery, _Mapping]] = ..., availability: _Optional[_Union[Availability, _Mapping]] = ...) -> None: ...

class Availability(_message.Message):
    __slots__ = ("budget_id", "sold_out", "version")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    SOLD_OUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    sold_out: bool
    version: int
    def __init__(self, budget_id: _Optional[str] = ..., sold_out: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class RecordQuery(_message.Message):
    __slots__ = ("query_id", "budget_id", "request_id")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    budget_id: str
    request_id: str
    def __init__(self, query_id: _Optional[str] = ..., budget_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RecordAnswer(_message.Message):
    __slots__ = ("query_id", "known", "kind", "budget_id", "amount", "code")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    known: bool
    kind: str
    budget_id: str
    amount: int
    code: _common_pb2.ResultCode
    def __init__(self, query_id: _Optional[str] = ..., known: _Optional[bool] = ..., kind: _Optional[str] = ..., budget_id: _Optional[str] = ..., amount: _Optional[int] = ..., code: _Optional[_Union[_common_pb2.ResultCode, str]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("budget_id", "seq", "consumed", "returned", "reserved", "released", "available")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    seq: int
    consumed: int
    returned: int
    reserved: int
    released: int
    available: int
    def __init__(self, budget_id: _Optional[str] = ..., seq: _Optional[int] = ..., consumed: _Optional[int] = ..., returned: _Optional[int] = ..., reserved: _Optional[int] = ..., released: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...

class AgentHolding(_message.Message):
    __slots__ = ("budget_id", "version", "balance", "applied", "lease_ms", "mode", "state", "lost", "availability")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    version: int
    balance: int
    applied: Usage
    lease_ms: int
    mode: _common_pb2.Mode
    state: _common_pb2.BudgetState
    lost: bool
    availability: Availability
    def __init__(self, budget_id: _Optional[str] = ..., version: _Optional[int] = ..., balance: _Optional[int] = ..., applied: _Optional[_Union[Usage, _Mapping]] = ..., lease_ms: _Optional[int] = ..., mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., state: _Optional[_Union[_common_pb2.BudgetState, str]] = ..., lost: _Optional[bool] = ..., availability: _Optional[_Union[Availability, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("agent_id", "region", "usage")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    region: str
    usage: _containers.RepeatedCompositeFieldContainer[Usage]
    def __init__(self, agent_id: _Optional[str] = ..., region: _Optional[str] = ..., usage: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "lease_ms", "heartbeat_ms", "holdings")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    lease_ms: int
    heartbeat_ms: int
    holdings: _containers.RepeatedCompositeFieldContainer[AgentHolding]
    def __init__(self, session_id: _Optional[str] = ..., lease_ms: _Optional[int] = ..., heartbeat_ms: _Optional[int] = ..., holdings: _Optional[_Iterable[_Union[AgentHolding, _Mapping]]] = ...) -> None: ...

class SliceRequest(_message.Message):
    __slots__ = ("budget_id", "request_id", "needed", "observed_rate", "usage")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NEEDED_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_RATE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    needed: int
    observed_rate: int
    usage: Usage
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., needed: _Optional[int] = ..., observed_rate: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("budget_id", "request_id", "transfer_id", "amount", "code", "message", "holding")
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    budget_id: str
    request_id: str
    transfer_id: str
    amount: int
    code: _common_pb2.ResultCode
    message: str
    holding: AgentHolding
    def __init__(self, budget_id: _Optional[str] = ..., request_id: _Optional[str] = ..., transfer_id: _Optional[str] = ..., amount: _Optional[int] = ..., code: _Optional[_Union[_common_pb2.ResultCode, str]] = ..., message: _Optional[str] = ..., holding: _Optional[_Union[AgentHolding, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at_ms", "usage")
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    sent_at_ms: int
    usage: _containers.RepeatedCompositeFieldContainer[Usage]
    def __init__(self, sent_at_ms: _Optional[int] = ..., usage: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ...) -> None: ...

class LeaseRenewal(_message.Message):
    __slots__ = ("sent_at_ms", "holdings")
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    sent_at_ms: int
    holdings: _containers.RepeatedCompositeFieldContainer[AgentHolding]
    def __init__(self, sent_at_ms: _Optional[int] = ..., holdings: _Optional[_Iterable[_Union[AgentHolding, _Mapping]]] = ...) -> None: ...

class ReclaimOrder(_message.Message):
    __slots__ = ("order_id", "budget_id", "amount", "deadline_ms")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    budget_id: str
    amount: int
    deadline_ms: int
    def __init__(self, order_id: _Optional[str] = ..., budget_id: _Optional[str] = ..., amount: _Optional[int] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class ReclaimAnswer(_message.Message):
    __slots__ = ("order_id", "budget_id", "released", "usage")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    budget_id: str
    released: int
    usage: Usage
    def __init__(self, order_id: _Optional[str] = ..., budget_id: _Optional[str] = ..., released: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class SessionError(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...
