"""What a caller gets when a request fails: INVALID_ARGUMENT for a malformed one (not grpcio's
UNKNOWN), the service's status for a known error, INTERNAL (logged) for anything else.

grpcio decodes a request before the handler runs and answers UNKNOWN when the bytes
are not a valid message. Each handler's decoder is wrapped so that a decode error
becomes a ``Malformed`` value, which the ``rpc`` wrapper turns into INVALID_ARGUMENT
with the decoder's message; in a request stream, each message is decoded so, and the
handler answers a ``Malformed`` one as it sees fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from quota_rules.guard import Guard


@dataclass(frozen=True, slots=True)
class Malformed:
    error: str


# A service's mapping of its errors to a status and message; None for an unexpected error.
StatusFor = Callable[[BaseException], tuple[grpc.StatusCode, str] | None]


def failure_status(
    exc: BaseException, method: str, status_for: StatusFor, log: logging.Logger
) -> tuple[grpc.StatusCode, str]:
    """The status a failed call answers with; an unexpected error is logged and INTERNAL, its
    type named but not its text (which may carry internals)."""
    mapped = status_for(exc)
    if mapped is None:
        log.error("%s failed", method, exc_info=exc)
        mapped = (grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
    return mapped


def _tolerant(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError as exc:
            return Malformed(str(exc))

    return run


class _Capture:
    """Stands in for the server while a generated ``add_*_to_server`` registers its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.service = service
        self.handlers = handlers


def add_servicer(
    add: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server, guard: Guard | None = None
) -> None:
    """Register ``servicer`` like ``add(servicer, server)`` would, with tolerant request decoding,
    and with ``guard`` (quota_rules/guard.py) deciding who may call each method."""
    capture = _Capture()
    add(servicer, capture)
    handlers = {
        name: h._replace(request_deserializer=_tolerant(h.request_deserializer))  # type: ignore[attr-defined]
        if h.request_deserializer is not None
        else h
        for name, h in capture.handlers.items()
    }
    if guard is not None:
        handlers = {name: guard.protect(f"/{capture.service}/{name}", h) for name, h in handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, handlers),))
    server.add_registered_method_handlers(capture.service, handlers)
