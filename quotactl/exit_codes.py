"""Process exit codes of ``quotactl``.

====  ================================================================================
code  meaning
====  ================================================================================
0     success: the call took effect (OK) or was already applied (EXISTS)
1     business refusal: the response carries any other result code
      (INSUFFICIENT, CONFLICT, BUDGET_PAUSED, BUDGET_CLOSED, EXPIRED, ...)
2     usage or bad input: argument errors, client-side validation (e.g. an amount
      that is not a whole number in 1..2^53-1), gRPC INVALID_ARGUMENT
3     not found: gRPC NOT_FOUND (e.g. an unknown budget)
4     unavailable: gRPC UNAVAILABLE or DEADLINE_EXCEEDED (center down, connection
      refused, --timeout elapsed), or ``audit`` found no mismatch but a budget too busy
      to read at one instant (try again)
5     audit mismatch: ``audit`` found the books unbalanced
6     any other gRPC error (or an unexpected client failure)
7     not allowed: gRPC UNAUTHENTICATED (no identity, or one the center does not
      know) or PERMISSION_DENIED (the identity lacks the role or the budget)
130   interrupted (Ctrl-C)
====  ================================================================================

gRPC errors are reported on stderr as a single line ``quotactl: error: <details>``;
business refusals are normal responses, printed on stdout like any other.
"""

from __future__ import annotations

import enum

import grpc

from quota.v1 import common_pb2


class ExitCode(enum.IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAVAILABLE = 4
    AUDIT_MISMATCH = 5
    ERROR = 6
    NOT_ALLOWED = 7
    INTERRUPTED = 130


EPILOG = """\
exit codes:
  0    success (result OK or EXISTS)
  1    business refusal (any other result code, e.g. INSUFFICIENT, CONFLICT, BUDGET_PAUSED)
  2    usage or bad input (argument errors, bad amounts, gRPC INVALID_ARGUMENT)
  3    not found (gRPC NOT_FOUND)
  4    unavailable or timed out (gRPC UNAVAILABLE, DEADLINE_EXCEEDED, connection refused)
  5    audit mismatch (audit found the books unbalanced)
  6    any other gRPC error
  7    not allowed (gRPC UNAUTHENTICATED or PERMISSION_DENIED: see README, Security)
  130  interrupted

Amounts are integers in minor units, 1..2^53-1; decimals, exponents and signs are rejected."""

_SUCCESS = frozenset({common_pb2.RESULT_CODE_OK, common_pb2.RESULT_CODE_EXISTS})

_BY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.NOT_ALLOWED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.NOT_ALLOWED,
}


def for_result(code: int, *, unset_is_ok: bool = False) -> ExitCode:
    """Exit code for a response's result code.

    ``unset_is_ok`` is for reads (``get``): the contract defines result codes
    for writes, so a read answered without one is not a refusal.
    """
    if code in _SUCCESS or (unset_is_ok and code == common_pb2.RESULT_CODE_UNSPECIFIED):
        return ExitCode.OK
    return ExitCode.REFUSED


def for_status(status: grpc.StatusCode) -> ExitCode:
    """Exit code for a failed RPC's gRPC status."""
    return _BY_STATUS.get(status, ExitCode.ERROR)
