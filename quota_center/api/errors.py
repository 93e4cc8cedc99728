"""One place that turns exceptions into gRPC statuses with a clear message, and counts every call."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import grpc
from google.protobuf.message import Message
from redis.exceptions import RedisError

from quota.v1 import common_pb2 as pb
from quota_center.errors import BucketLost, StaleGeneration, Unavailable, UnknownBudget
from quota_center.ledger.errors import (
    BudgetNotFound,
    InvalidArgument,
    InvalidTransition,
    StoreClosed,
)
from quota_center.metrics import LATENCY, REQUESTS
from quota_rules.call_log import CallLog
from quota_rules.decoding import Malformed, failure_status
from quota_rules.limits import InvalidInput

log = logging.getLogger(__name__)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message a caller gets for ``exc``; None for an unexpected error."""
    if isinstance(exc, InvalidInput | InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, UnknownBudget | BudgetNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, InvalidTransition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, Unavailable | StoreClosed | BucketLost | StaleGeneration):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, RedisError):
        return grpc.StatusCode.UNAVAILABLE, f"Redis unavailable: {exc}"
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
        return grpc.StatusCode.UNAVAILABLE, f"PostgreSQL unavailable: {exc}"
    return None


Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Message)
S = TypeVar("S")
Handler = Callable[[S, Req, Context], Awaitable[Resp]]


def rpc(method: str) -> Callable[[Handler[S, Req, Resp]], Handler[S, Req, Resp]]:
    """Wrap a handler: map errors to statuses, count the call by result code, time it."""

    def wrap(handler: Handler[S, Req, Resp]) -> Handler[S, Req, Resp]:
        @functools.wraps(handler)
        async def run(self: S, request: Req, context: Context) -> Resp:
            start = time.perf_counter()
            try:
                if isinstance(request, Malformed):
                    raise InvalidInput(f"malformed {method} request: {request.error}")
                response = await handler(self, request, context)
            except Exception as exc:
                mapped = failure_status(exc, method, status_for, log)
                _observe(method, mapped[0].name, start, request)
                await context.abort(*mapped)
            _observe(method, _code_of(response), start, request)
            return response

        return run

    return wrap


_CODE_NAMES = {value: name.removeprefix("RESULT_CODE_") for name, value in pb.ResultCode.items()}


def _code_of(response: Message) -> str:
    if "code" in response.DESCRIPTOR.fields_by_name:
        code = getattr(response, "code")  # noqa: B009 - not every response has it
        return _CODE_NAMES.get(code) or pb.ResultCode.Name(code).removeprefix("RESULT_CODE_")
    return "OK"


# Labelled children, looked up once: ``labels()`` takes a lock and hashes the labels every call.
_counted: dict[tuple[str, str], Any] = {}
_timed: dict[str, Any] = {}


# The calls logged (quota_rules/call_log.py); the center's settings set its sample and rate.
CALLS = CallLog(logging.getLogger("quota_center.calls"), ok_sample=0.001, per_s=10)


def _observe(method: str, code: str, start: float, request: object) -> None:
    counter = _counted.get((method, code))
    if counter is None:
        counter = _counted[(method, code)] = REQUESTS.labels(method, code)
    counter.inc()
    timer = _timed.get(method)
    if timer is None:
        timer = _timed[method] = LATENCY.labels(method)
    seconds = time.perf_counter() - start
    timer.observe(seconds)
    CALLS.record(method, code, seconds, request)
