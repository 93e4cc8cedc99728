"""Typed errors of the ledger store.

The gRPC layer maps these to result codes or statuses; nothing here leaks asyncpg types.
"""

from __future__ import annotations

# The ledger raises the service's own StaleGeneration (a rebuild moved the generation on), so
# callers handle a stale write the same wherever it was found.
from quota_center.errors import StaleGeneration as StaleGeneration


class LedgerError(Exception):
    """Base class of every error the ledger store raises on purpose."""


class InvalidArgument(LedgerError, ValueError):
    """An argument was refused before touching the database (bad id, naive datetime, ...)."""


class InvalidAmount(InvalidArgument):
    """An amount that is not an int in range, or a total that would exceed MAX_AMOUNT."""


class BudgetNotFound(LedgerError):
    """No budget with that id exists."""

    def __init__(self, budget_id: str) -> None:
        super().__init__(f"budget {budget_id!r} not found")
        self.budget_id = budget_id


class LedgerConflict(LedgerError):
    """An idempotency key was reused with different content."""


class InvalidTransition(LedgerError):
    """A state change that the budget life cycle forbids (closed is final)."""

    def __init__(self, budget_id: str, current: str, requested: str) -> None:
        super().__init__(f"budget {budget_id!r} cannot go from {current} to {requested}")
        self.budget_id = budget_id
        self.current = current
        self.requested = requested


class BudgetClosed(LedgerError):
    """The budget is closed; it accepts no more top-ups."""

    def __init__(self, budget_id: str) -> None:
        super().__init__(f"budget {budget_id!r} is closed")
        self.budget_id = budget_id


class StoreClosed(LedgerError):
    """The store was closed (or its writer died); no more writes are accepted."""


class MigrationError(LedgerError):
    """The migrations on disk disagree with what the database says was applied."""
