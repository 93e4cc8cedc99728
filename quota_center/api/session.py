"""The agent session stream (proto ``quota.v1.AgentSession``); the region agent issue fills it in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from quota.v1 import session_pb2 as spb
from quota.v1 import session_pb2_grpc

from quota_center.api.errors import Context

UNIMPLEMENTED = "agent sessions are not served by this version of the center"


class AgentSessionServicer(session_pb2_grpc.AgentSessionServicer):
    def Session(self, request_iterator: object, context: Context) -> AsyncIterator[spb.CenterMessage]:
        return _unimplemented(context)


async def _unimplemented(context: Context) -> AsyncIterator[spb.CenterMessage]:
    context.set_code(grpc.StatusCode.UNIMPLEMENTED)
    context.set_details(UNIMPLEMENTED)
    none: list[spb.CenterMessage] = []
    for message in none:  # an async generator that ends at once: the status carries the answer
        yield message
