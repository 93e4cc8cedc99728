"""How a caller marks a retry, so that it is safe wherever it lands (README, "Retrying").

A request served from one agent's slice is known to that agent only. A retry that goes elsewhere
(its first target failed) must not be served again: a retry marked so is never served from a
slice it is not known to; it goes to the center, which answers it from its own claim or asks the
agents holding the budget. Callers mark a retry with the metadata ``quota-retry: 1``; gRPC's own
retries and hedges carry ``grpc-previous-rpc-attempts``, which counts too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RETRY_KEY = "quota-retry"
RETRY_METADATA: tuple[tuple[str, str], ...] = ((RETRY_KEY, "1"),)
_GRPC_ATTEMPTS = "grpc-previous-rpc-attempts"


def is_retry(metadata: Iterable[Any] | None) -> bool:
    """Whether a call's metadata marks it as a retry."""
    for key, value in metadata or ():
        text = value if isinstance(value, str) else value.decode(errors="replace")
        if key == RETRY_KEY and text not in ("", "0"):
            return True
        if key == _GRPC_ATTEMPTS and text.strip() not in ("", "0"):
            return True
    return False
