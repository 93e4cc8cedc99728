"""Access control at a gRPC listener: who the caller is, and whether the call may go on.

Every handler registered through ``quota_rules.decoding.add_servicer`` runs behind
``Guard.protect``: the caller is identified from its TLS peer certificate (the subject common
name) or a bearer token (``authorization: Bearer ...``, accepted over TLS only), the decision is
``quota_rules.access.decide``, and a refused call ends with UNAUTHENTICATED (no identity, or a token
the access file does not know) or PERMISSION_DENIED (an identity without the role or the budget)
before the handler sees it. The handler finds the caller in ``current_caller()``: the center records
it as the ledger's actor, the session binds the agent id to it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import grpc

from quota_rules.access import ANONYMOUS, AccessFileError, AccessPolicy, Caller, Grant, decide, parse_policy

_CALLER: ContextVar[Caller] = ContextVar("caller", default=ANONYMOUS)

Context = grpc.aio.ServicerContext[Any, Any]


def current_caller() -> Caller:
    """The caller of the call being handled (ANONYMOUS outside a guarded call)."""
    return _CALLER.get()


def load_policy(path: str) -> AccessPolicy:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AccessFileError(f"access file {path}: {exc.strerror or exc}") from None
    return parse_policy(text, f"access file {path}")


def _budget_ids(request: object) -> list[str]:
    """The budgets a request names: its ``budget_id``, or each of its ``items``' (DeductBatch)."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:  # a Malformed request: it is refused as such, touching nothing
        return []
    names = descriptor.fields_by_name
    if "budget_id" in names:
        return [request.budget_id]  # type: ignore[attr-defined]
    if "items" in names:
        return [item.budget_id for item in request.items]  # type: ignore[attr-defined]
    return []


class Guard:
    """Identifies callers and applies ``policy`` (None: access control off, every call allowed).

    ``on_denied(method, code)`` counts refusals (a metric of the process that owns the guard).
    """

    def __init__(self, policy: AccessPolicy | None, on_denied: Callable[[str, str], None]) -> None:
        self.policy = policy
        self.on_denied = on_denied

    def identify(self, context: Context) -> tuple[Caller, str | None]:
        """The caller, and why it is unauthenticated when it presented a credential that failed."""
        auth = context.auth_context()
        names = list(auth.get("x509_common_name", ()))
        if names:
            name = names[0].decode(errors="replace")
            return Caller(name, "certificate", self._grant(name)), None
        token = _bearer(context)
        if token is None:
            return ANONYMOUS, None
        if list(auth.get("transport_security_type", ())) != [b"ssl"]:
            return ANONYMOUS, "bearer tokens are accepted over TLS only"
        holder = self.policy.token_identity(token) if self.policy is not None else None
        if holder is None:
            return ANONYMOUS, "the bearer token is not one the access file knows"
        return Caller(holder, "token", self._grant(holder)), None

    def _grant(self, name: str) -> Grant | None:
        return self.policy.grant_for(name) if self.policy is not None else None

    async def admit(self, method: str, request: object, context: Context) -> Caller:
        """The caller if it may make this call; otherwise the call is aborted."""
        caller, failed = self.identify(context)
        enforced = self.policy is not None
        if failed is not None and enforced:
            await self._deny(context, method, grpc.StatusCode.UNAUTHENTICATED, failed)
        if enforced and caller.via == "none":
            await self._deny(
                context,
                method,
                grpc.StatusCode.UNAUTHENTICATED,
                "no identity: present a client certificate, or a bearer token over TLS",
            )
        reason = decide(caller, method, _budget_ids(request), enforced)
        if reason is not None:
            await self._deny(context, method, grpc.StatusCode.PERMISSION_DENIED, reason)
        return caller

    async def _deny(self, context: Context, method: str, code: grpc.StatusCode, reason: str) -> None:
        self.on_denied(method, code.name)
        await context.abort(code, reason)

    def protect(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` with this guard in front of its behaviour."""
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))  # type: ignore[attr-defined,no-any-return]
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._stream(method, handler.stream_stream))  # type: ignore[attr-defined,no-any-return]
        raise TypeError(f"{method}: only unary and bidirectional-stream methods are guarded")

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(behavior)
        async def run(request: object, context: Context) -> Any:
            _CALLER.set(await self.admit(method, request, context))
            return await behavior(request, context)

        return run

    def _stream(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            @functools.wraps(behavior)
            async def answers(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
                _CALLER.set(await self.admit(method, None, context))
                async for answer in behavior(requests, context):
                    yield answer

            return answers

        @functools.wraps(behavior)
        async def run(requests: AsyncIterator[Any], context: Context) -> Any:
            _CALLER.set(await self.admit(method, None, context))
            return await behavior(requests, context)

        return run


def _bearer(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode(errors="replace")
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None
