"""How a retry is recognised in a call's metadata (quota_rules/retries.py)."""

from __future__ import annotations

import pytest

from quota_rules.retries import RETRY_METADATA, is_retry


@pytest.mark.parametrize(
    ("metadata", "retry"),
    [
        (None, False),
        ((), False),
        (RETRY_METADATA, True),
        ((("quota-retry", "0"),), False),
        ((("quota-retry", b"1"),), True),
        ((("grpc-previous-rpc-attempts", "1"),), True),  # gRPC's own retry or hedge
        ((("grpc-previous-rpc-attempts", "0"),), False),
        ((("user-agent", "x"),), False),
    ],
)
def test_is_retry(metadata: object, retry: bool) -> None:
    assert is_retry(metadata) is retry  # type: ignore[arg-type]
