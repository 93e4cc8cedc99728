"""Budget definitions and their changes (create, top-up, state), each with its ledger row.

Every change writes the budget row and its ledger row in one transaction, so the ledger alone
explains every total: total = Σ amounts moved from 'external' to 'main'.

Changes of one budget lock its row FOR NO KEY UPDATE, which serialises them. Group-commit batches
hold the same row FOR SHARE, so a generation bump waits for batches in flight and holds off new ones
(see bump_generation). The lock is not FOR UPDATE, so plain foreign-key checks (FOR KEY SHARE) never
wait for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from quota_center.holders import agent_loss_doubt, agent_of, doubt_holder, sub_holder
from quota_rules.limits import MAX_AMOUNT

from . import validate
from .errors import (
    BudgetClosed,
    BudgetNotFound,
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    LedgerConflict,
    StaleGeneration,
)
from .models import MARKER_KINDS, BudgetRow, PolicyValue, Rebuild, budget_from_record

_COLUMNS: Final = (
    "budget_id, unit, total, state, valid_from, valid_until, policy, sub_buckets, "
    "created_at, updated_at, initial_total, redis_gen"
)

_INSERT_LEDGER: Final = """
INSERT INTO ledger (budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason, gen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

# What the ledger says main holds, over every generation: main is rebuilt, never put in doubt.
_MAIN_BALANCE: Final = """
SELECT coalesce(sum(CASE WHEN to_holder = 'main' THEN amount ELSE 0 END), 0)
     - coalesce(sum(CASE WHEN from_holder = 'main' THEN amount ELSE 0 END), 0)
FROM ledger
WHERE budget_id = $1 AND NOT (kind = ANY($2::text[]))
"""

# What each sub-bucket holds per generation before `gen`, where it is not 0.
_SUB_BALANCES: Final = """
SELECT holder, gen, sum(delta) AS balance FROM (
    SELECT to_holder AS holder, gen, amount AS delta FROM ledger
    WHERE budget_id = $1 AND gen < $2 AND to_holder LIKE 'sub:%' AND NOT (kind = ANY($3::text[]))
    UNION ALL
    SELECT from_holder, gen, -amount FROM ledger
    WHERE budget_id = $1 AND gen < $2 AND from_holder LIKE 'sub:%' AND NOT (kind = ANY($3::text[]))
) moves
GROUP BY holder, gen
HAVING sum(delta) <> 0
ORDER BY holder, gen
"""

# What each agent's holding of an older generation still holds, by the ledger (see _move_to_doubt).
_AGENT_BALANCES: Final = _SUB_BALANCES.replace("'sub:%'", "'agent:%'")

# Which state changes the life cycle allows; staying put is always allowed (idempotent retries).
_TRANSITIONS: Final = {
    "active": frozenset({"paused", "closed"}),
    "paused": frozenset({"active", "closed"}),
    "closed": frozenset[str](),
}


async def create(
    pool: Any,
    budget_id: str,
    *,
    unit: str,
    total: int,
    valid_from: datetime | None,
    valid_until: datetime | None,
    policy: dict[str, PolicyValue],
    sub_buckets: int,
    actor: str,
    reason: str,
) -> tuple[BudgetRow, bool]:
    validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
    validate.text("unit", unit, max_len=validate.MAX_UNIT)
    validate.amount("total", total, allow_zero=True)
    validate.timestamp("valid_from", valid_from)
    validate.timestamp("valid_until", valid_until)
    if valid_from is not None and valid_until is not None and valid_from >= valid_until:
        raise InvalidArgument("valid_from must be before valid_until")
    clean_policy = validate.policy(policy)
    validate.count("sub_buckets", sub_buckets, low=0, high=1_000_000)
    _actor_reason(actor, reason)
    async with pool.acquire() as conn, conn.transaction():
        # ON CONFLICT waits for a concurrent create of the same id, then sees its committed row.
        rec = await conn.fetchrow(
            f"""
            INSERT INTO budgets (budget_id, unit, total, initial_total, valid_from, valid_until,
                                 policy, sub_buckets)
            VALUES ($1, $2, $3, $3, $4, $5, $6::jsonb, $7)
            ON CONFLICT (budget_id) DO NOTHING
            RETURNING {_COLUMNS}
            """,
            budget_id,
            unit,
            total,
            valid_from,
            valid_until,
            json.dumps(clean_policy),
            sub_buckets,
        )
        if rec is None:
            existing = await conn.fetchrow(f"SELECT {_COLUMNS} FROM budgets WHERE budget_id = $1", budget_id)
            return budget_from_record(existing), False
        await _ledger_row(
            conn, budget_id, f"create:{budget_id}", "create", "external", "main", total, actor, reason, 1
        )
        return budget_from_record(rec), True


async def get(pool: Any, budget_id: str) -> BudgetRow | None:
    validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
    rec = await pool.fetchrow(f"SELECT {_COLUMNS} FROM budgets WHERE budget_id = $1", budget_id)
    return None if rec is None else budget_from_record(rec)


async def get_many(conn: Any, budget_ids: Sequence[str]) -> dict[str, BudgetRow]:
    """The budgets among ``budget_ids`` that exist, by id (one query)."""
    ids = [validate.text("budget_id", b, max_len=validate.MAX_BUDGET_ID) for b in budget_ids]
    recs = await conn.fetch(f"SELECT {_COLUMNS} FROM budgets WHERE budget_id = ANY($1::text[])", ids)
    return {str(r["budget_id"]): budget_from_record(r) for r in recs}


async def list_page(pool: Any, *, state: str | None, after: str | None, limit: int) -> list[BudgetRow]:
    if state is not None:
        validate.state(state)
    if after is not None:
        validate.text("after", after, max_len=validate.MAX_BUDGET_ID, allow_empty=True)
    validate.count("limit", limit, low=1, high=10_000)
    recs = await pool.fetch(
        f"""
        SELECT {_COLUMNS} FROM budgets
        WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR budget_id > $2)
        ORDER BY budget_id
        LIMIT $3
        """,
        state,
        after,
        limit,
    )
    return [budget_from_record(r) for r in recs]


async def set_state(pool: Any, budget_id: str, state: str, actor: str, reason: str) -> BudgetRow:
    validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
    validate.state(state)
    _actor_reason(actor, reason)
    async with pool.acquire() as conn, conn.transaction():
        current = await _lock(conn, budget_id)
        if current.state == state:
            return current  # a retried pause/resume/close: nothing to record
        if state not in _TRANSITIONS[current.state]:
            raise InvalidTransition(budget_id, current.state, state)
        rec = await conn.fetchrow(
            f"UPDATE budgets SET state = $2, updated_at = now() WHERE budget_id = $1 RETURNING {_COLUMNS}",
            budget_id,
            state,
        )
        # A fresh id per change: the same transition may legitimately happen many times.
        transfer_id = f"state:{budget_id}:{uuid.uuid4().hex}"
        # The new state goes into the reason: the row itself moves nothing.
        note = f"{state}: {reason}" if reason else state
        await _ledger_row(
            conn, budget_id, transfer_id, "state", "main", "main", 0, actor, note, current.redis_gen
        )
        return budget_from_record(rec)


async def top_up(
    pool: Any, budget_id: str, request_id: str, amount: int, gen: int, actor: str, reason: str
) -> tuple[BudgetRow, bool]:
    validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
    validate.text("request_id", request_id, max_len=validate.MAX_TRANSFER_ID - validate.MAX_BUDGET_ID - 8)
    validate.amount("amount", amount, allow_zero=False)
    validate.count("gen", gen, low=1, high=validate.MAX_GEN)
    _actor_reason(actor, reason)
    transfer_id = f"top_up:{budget_id}:{request_id}"
    async with pool.acquire() as conn, conn.transaction():
        # The lock serialises top-ups of one budget, so the idempotency check below cannot race.
        current = await _lock(conn, budget_id)
        prior = await conn.fetchrow(
            "SELECT budget_id, kind, amount FROM ledger WHERE transfer_id = $1", transfer_id
        )
        if prior is not None:
            if (prior["budget_id"], prior["kind"], prior["amount"]) == (budget_id, "top_up", amount):
                return current, False  # a retry: the original answer, even if closed since
            raise LedgerConflict(f"top-up {request_id!r} of {budget_id!r} was made with another amount")
        if current.redis_gen != gen:
            # Redis was rebuilt since the caller took its pending record: that record is gone,
            # so committing now would add to a total that no bucket received.
            raise StaleGeneration(budget_id)
        if current.state == "closed":
            raise BudgetClosed(budget_id)
        if current.total + amount > MAX_AMOUNT:
            raise InvalidAmount(
                f"top-up of {amount} would make the total of {budget_id!r} exceed {MAX_AMOUNT}"
            )
        rec = await conn.fetchrow(
            f"""
            UPDATE budgets SET total = total + $2, updated_at = now()
            WHERE budget_id = $1 RETURNING {_COLUMNS}
            """,
            budget_id,
            amount,
        )
        await _ledger_row(
            conn, budget_id, transfer_id, "top_up", "external", "main", amount, actor, reason, gen
        )
        return budget_from_record(rec), True


async def bump_generation(pool: Any, budget_id: str, expected_gen: int, actor: str, reason: str) -> Rebuild:
    """Move the budget to generation expected_gen + 1 (compare-and-set) and compute its main.

    The lock waits for group-commit batches that hold the budget row FOR SHARE, and holds off new
    ones until commit; they then see the new generation and refuse old-generation rows (STALE).
    So the main computed here stays exact: no old-generation row can land after it. For the same
    reason the older generations' sub-bucket balances are final here: they move to explicit
    in-doubt holders in this transaction (see _move_to_doubt).
    """
    validate.text("budget_id", budget_id, max_len=validate.MAX_BUDGET_ID)
    validate.count("expected_gen", expected_gen, low=1, high=validate.MAX_GEN - 1)
    _actor_reason(actor, reason)
    async with pool.acquire() as conn, conn.transaction():
        current = await _lock(conn, budget_id)
        if current.redis_gen < expected_gen:
            raise InvalidArgument(
                f"budget {budget_id!r} is in generation {current.redis_gen}, not {expected_gen}"
            )
        bumped = current.redis_gen == expected_gen
        gen = expected_gen + 1 if bumped else current.redis_gen
        if bumped:
            await conn.execute(
                "UPDATE budgets SET redis_gen = $2, updated_at = now() WHERE budget_id = $1", budget_id, gen
            )
            tid = f"rebuild:{budget_id}:{gen}"
            await _ledger_row(conn, budget_id, tid, "rebuild", "main", "main", 0, actor, reason, gen)
            await _move_to_doubt(conn, budget_id, gen, current.sub_buckets, actor)
        main = await conn.fetchval(_MAIN_BALANCE, budget_id, sorted(MARKER_KINDS))
        return Rebuild(budget_id=budget_id, gen=gen, main=int(main), state=current.state, bumped=bumped)


async def _move_to_doubt(conn: Any, budget_id: str, gen: int, sub_buckets: int, actor: str) -> None:
    """Move what each sub-bucket of an older generation still holds to its own in-doubt holder.

    Runs in the bump's transaction, after which no row of an older generation can commit: the
    amounts are final, and 'doubt:sub:3@1' says whose and from when. Rows are of the older
    generation, so the sub-bucket's balance there becomes exactly 0. Every sub-bucket of the
    generation just lost gets a holder, even at 0: one that refunded a deduction of an even older
    generation held that refund, which no ledger row shows (its balance may even be negative, if
    it gave the refund back to main; such a row moves the other way). The settlement
    (quota_center/recovery/settlement.py) takes it from there, with the spend log.
    """
    balances = {
        (str(rec["holder"]), int(rec["gen"])): int(rec["balance"])
        for rec in await conn.fetch(_SUB_BALANCES, budget_id, gen, sorted(MARKER_KINDS))
    }
    for index in range(sub_buckets):
        balances.setdefault((sub_holder(index), gen - 1), 0)
    for (holder, old), balance in sorted(balances.items()):
        doubt = doubt_holder(holder, old)
        source, target = (holder, doubt) if balance > 0 else (doubt, holder)
        await _ledger_row(
            conn,
            budget_id,
            f"in_doubt:{budget_id}:{holder}:{old}",
            "in_doubt",
            source,
            target,
            abs(balance),
            actor,
            "Redis lost the sub-bucket",
            old,
        )
    # An agent's holding likewise, under 'doubt:agent:eu-1@1#0': the agent's next report carries
    # what it still has into its new holding and books the rest as consumed (agents/holdings.py).
    for rec in await conn.fetch(_AGENT_BALANCES, budget_id, gen, sorted(MARKER_KINDS)):
        holder, old, balance = str(rec["holder"]), int(rec["gen"]), int(rec["balance"])
        if balance <= 0:
            continue
        agent_id = agent_of(holder)
        assert agent_id is not None
        await _ledger_row(
            conn,
            budget_id,
            f"in_doubt:{budget_id}:{holder}:{old}",
            "in_doubt",
            holder,
            agent_loss_doubt(agent_id, old),
            balance,
            actor,
            "Redis lost the agent's holding",
            old,
        )


async def _ledger_row(
    conn: Any,
    budget_id: str,
    transfer_id: str,
    kind: str,
    from_holder: str,
    to_holder: str,
    amount: int,
    actor: str,
    reason: str,
    gen: int,
) -> None:
    await conn.execute(
        _INSERT_LEDGER, budget_id, transfer_id, kind, from_holder, to_holder, amount, actor, reason, gen
    )


async def _lock(conn: Any, budget_id: str) -> BudgetRow:
    rec = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM budgets WHERE budget_id = $1 FOR NO KEY UPDATE", budget_id
    )
    if rec is None:
        raise BudgetNotFound(budget_id)
    return budget_from_record(rec)


def _actor_reason(actor: str, reason: str) -> None:
    validate.text("actor", actor, max_len=validate.MAX_TEXT, allow_empty=True)
    validate.text("reason", reason, max_len=validate.MAX_TEXT, allow_empty=True)
