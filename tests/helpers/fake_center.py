"""A scripted in-process gRPC server for the Admin and Quota services (see conftest.fake_center)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import grpc
from google.protobuf.message import Message

from quota.v1 import admin_pb2, common_pb2

Handler = Callable[[Message, grpc.ServicerContext], Message]


class FakeCenter:
    def __init__(self) -> None:
        self.target = ""
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, Message]] = []

    def reply(self, method: str, response: Message) -> None:
        """Answer every call of ``method`` with ``response``."""
        self.handlers[method] = lambda _request, _context: response

    def abort(self, method: str, code: grpc.StatusCode, details: str) -> None:
        """Fail every call of ``method`` with a gRPC status."""

        def handler(_request: Message, context: grpc.ServicerContext) -> Message:
            context.abort(code, details)

        self.handlers[method] = handler

    def calls(self, method: str) -> list[Message]:
        return [request for name, request in self.requests if name == method]

    def dispatch(self, method: str, request: Message, context: grpc.ServicerContext) -> Message:
        self.requests.append((method, request))
        handler = self.handlers.get(method)
        if handler is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"fake center: no answer scripted for {method}")
        return handler(request, context)


class Servicer:
    """Every RPC of a service routed to FakeCenter.dispatch under its method name."""

    def __init__(self, center: FakeCenter, methods: list[str]) -> None:
        for name in methods:
            setattr(self, name, functools.partial(center.dispatch, name))


# The ``run`` / ``ctl`` fixtures: ``run(*argv)`` -> (exit code, stdout, stderr).
Run = Callable[..., tuple[int, str, str]]


# Every quotactl subcommand, for tests that go through all of them.
SUBCOMMANDS = [
    "create",
    "top-up",
    "pause",
    "resume",
    "close",
    "get",
    "list",
    "audit",
    "settle",
    "deduct",
    "return",
    "reserve",
    "confirm",
    "cancel",
    "balance",
]


def budget(**overrides: object) -> admin_pb2.Budget:
    fields: dict[str, object] = {
        "budget_id": "b1",
        "unit": "cent",
        "total": 10_000,
        "state": common_pb2.BUDGET_STATE_ACTIVE,
        "mode": common_pb2.MODE_NORMAL,
        "main": 6_000,
        "held": 1_500,
        "consumed": 2_500,
        "available": 7_500,
    }
    fields.update(overrides)
    return admin_pb2.Budget(**fields)  # type: ignore[arg-type]
