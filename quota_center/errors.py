"""Errors the center's services raise; the gRPC layer maps each to a status."""

from __future__ import annotations


class BucketLost(Exception):
    """Redis no longer has a bucket of this budget: it must be rebuilt from the ledger."""

    def __init__(self, budget_id: str, holder: str) -> None:
        super().__init__(f"budget {budget_id}: bucket {holder} is missing from Redis")
        self.budget_id = budget_id
        self.holder = holder


class StaleGeneration(Exception):
    """The budget was rebuilt after a Redis loss while this operation was under way."""

    def __init__(self, budget_id: str) -> None:
        super().__init__(f"budget {budget_id} was rebuilt; retry")
        self.budget_id = budget_id


class UnknownBudget(LookupError):
    def __init__(self, budget_id: str) -> None:
        super().__init__(f"budget {budget_id!r} does not exist")
        self.budget_id = budget_id


class LockBusy(Exception):
    """A budget's lock was not free before the caller's deadline: nothing was done."""


class Unavailable(Exception):
    """Redis or PostgreSQL did not answer; nothing acknowledged was lost."""
