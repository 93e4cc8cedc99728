"""The TTL a reservation gets, at the center and at an agent alike (pure)."""

from __future__ import annotations

from quota_rules.limits import InvalidInput


def resolve_ttl(ttl_ms: int, default_ms: int, max_ms: int) -> int:
    """The TTL a reservation gets: ``ttl_ms``, or ``default_ms`` for 0; InvalidInput if out of range."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
        raise InvalidInput("ttl_ms must be an integer number of milliseconds")
    if ttl_ms < 0:
        raise InvalidInput(f"ttl_ms must not be negative, got {ttl_ms} (0 takes the default {default_ms})")
    if ttl_ms > max_ms:
        raise InvalidInput(f"ttl_ms {ttl_ms} exceeds the maximum {max_ms}")
    return ttl_ms or default_ms
