"""Calls to the center's ``Quota`` service for what the slices cannot serve.

One channel, opened once and shared with the session stream. Every call has a deadline. A
center that cannot be reached (or does not answer in time) is ``CenterUnavailable``, which the
caller gets as UNAVAILABLE; nothing is remembered then, so a retry is forwarded again (the
center applies a request id once, whichever attempt reached it). Any other status the center
answers with (INVALID_ARGUMENT, NOT_FOUND, ...) is ``CenterRefused`` and reaches the caller as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from quota_rules.retries import RETRY_METADATA

T = TypeVar("T")

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class CenterUnavailable(Exception):
    """The center could not be reached or did not answer in time."""


class CenterRefused(Exception):
    """The center answered with a gRPC error status; the caller gets the same one."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class CenterClient:
    def __init__(self, channel: grpc.aio.Channel, target: str, deadline_ms: int) -> None:
        self.target = target
        self.timeout = deadline_ms / 1000
        self.stub = quota_pb2_grpc.QuotaStub(channel)

    async def deduct(self, request: pb.DeductRequest, *, retry: bool = False) -> pb.DeductResponse:
        """Forward a deduction; ``retry``: marked as one, so the center asks who served it."""
        return await self._call(self.stub.Deduct, request, RETRY_METADATA if retry else None)

    async def deduct_batch(
        self, request: pb.DeductBatchRequest, *, retry: bool = False
    ) -> pb.DeductBatchResponse:
        return await self._call(self.stub.DeductBatch, request, RETRY_METADATA if retry else None)

    async def return_(self, request: pb.ReturnRequest) -> pb.ReturnResponse:
        return await self._call(self.stub.Return, request)

    async def reserve(self, request: pb.ReserveRequest) -> pb.ReserveResponse:
        return await self._call(self.stub.Reserve, request)

    async def confirm(self, request: pb.ConfirmRequest) -> pb.ConfirmResponse:
        return await self._call(self.stub.Confirm, request)

    async def cancel(self, request: pb.CancelRequest) -> pb.CancelResponse:
        return await self._call(self.stub.Cancel, request)

    async def balance(self, request: pb.GetBalanceRequest) -> pb.GetBalanceResponse:
        return await self._call(self.stub.GetBalance, request)

    async def _call(
        self,
        method: Callable[..., Awaitable[T]],
        request: object,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> T:
        try:
            return await method(request, timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise CenterUnavailable(
                    f"the center at {self.target} is unreachable ({exc.code().name}: {exc.details()});"
                    " the request was not served here and may be retried"
                ) from None
            raise CenterRefused(exc.code(), exc.details() or exc.code().name) from None
