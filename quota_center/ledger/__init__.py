"""PostgreSQL side of the quota center: budget definitions and the append-only ledger.

Every ledger row moves `amount` from one holder to another within one budget and one Redis
generation. Holders are plain strings: 'external' (outside the budget: creates and top-ups come
from it), 'main', 'sub:<k>', 'agent:<name>', 'doubt:<holder>', 'consumed'. A holder's balance is
Σ in − Σ out, so all balances of a budget sum to 0 and 'external' is always −total.

The transfer id of a row is unique over the whole ledger: it is the idempotency key, and whoever
inserts it first (a transfer or a sweeper's abort marker) wins.
"""

from .errors import (
    BudgetClosed,
    BudgetNotFound,
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    LedgerConflict,
    LedgerError,
    MigrationError,
    StaleGeneration,
    StoreClosed,
)
from .migrate import migrate
from .models import (
    CURRENT_GEN,
    BudgetRow,
    LedgerEntry,
    LedgerRow,
    LedgerTotals,
    Rebuild,
    RecordOutcome,
)
from .store import LedgerStore

__all__ = [
    "CURRENT_GEN",
    "BudgetClosed",
    "BudgetNotFound",
    "BudgetRow",
    "InvalidAmount",
    "InvalidArgument",
    "InvalidTransition",
    "LedgerConflict",
    "LedgerEntry",
    "LedgerError",
    "LedgerRow",
    "LedgerStore",
    "LedgerTotals",
    "MigrationError",
    "Rebuild",
    "RecordOutcome",
    "StaleGeneration",
    "StoreClosed",
    "migrate",
]
