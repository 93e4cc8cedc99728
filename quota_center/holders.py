"""Holder names, as the ledger rows and the buckets name them (pure).

``main``; ``sub:<k>``, a sub-bucket; ``agent:<id>``, an agent's holding; and the in-doubt holders
that exist only in the ledger: ``doubt:sub:<k>@<gen>``, what sub-bucket k held when Redis lost
generation gen, and ``doubt:agent:<id>@<gen>#<n>``, the n-th lost lease of an agent's holding in
generation gen. Operators type these into ``quotactl settle``, so they are built here only.
"""

from __future__ import annotations

MAIN = "main"
SUB_PREFIX = "sub:"
AGENT_PREFIX = "agent:"
# Holders that exist only in the ledger (what lost holders held, until it is settled).
DOUBT_PREFIX = "doubt:"


def sub_holder(index: int) -> str:
    return f"{SUB_PREFIX}{index}"


def agent_holder(agent_id: str) -> str:
    return AGENT_PREFIX + agent_id


def agent_of(holder: str) -> str | None:
    """The agent id of a holder name like ``agent:eu-1``; None for other holders."""
    return holder[len(AGENT_PREFIX) :] if holder.startswith(AGENT_PREFIX) else None


def parse_holder(holder: str) -> int | None:
    """Sub-bucket index of a holder name like ``sub:3``; None for ``main``."""
    if holder == MAIN:
        return None
    prefix, _, index = holder.partition(":")
    if prefix + ":" != SUB_PREFIX or not index.isdigit():
        raise ValueError(f"not a center holder: {holder!r}")
    return int(index)


def ledger_only(holder: str) -> bool:
    """True for holders with no Redis bucket: a transfer to one is complete once ledgered."""
    return holder.startswith(DOUBT_PREFIX)


def doubt_holder(holder: str, gen: int) -> str:
    """Where what ``holder`` held in generation ``gen`` waits once Redis lost it: ``doubt:sub:3@1``."""
    return f"{DOUBT_PREFIX}{holder}@{gen}"


def agent_doubt_prefix(agent_id: str, gen: int) -> str:
    """An agent holding's lost leases in ``gen``, numbered after the ``#`` by agent_expire.lua."""
    return f"{doubt_holder(agent_holder(agent_id), gen)}#"


def agent_loss_doubt(agent_id: str, gen: int) -> str:
    """Where an agent's holding of generation ``gen`` waits once Redis lost it:
    ``doubt:agent:eu-1@1#0`` (its lost leases are ``#1``, ``#2``, ...)."""
    return f"{agent_doubt_prefix(agent_id, gen)}0"


def is_sub_doubt(holder: str) -> bool:
    """True for what a Redis loss took from a sub-bucket (``doubt:sub:3@1``), which the spend log
    settles by itself; an agent's (``doubt:agent:...``) waits for the agent or an operator."""
    return holder.startswith(DOUBT_PREFIX + SUB_PREFIX)


def lost_holder(doubt: str) -> str:
    """The holder an in-doubt holder stands for: ``sub:3`` for ``doubt:sub:3@1``."""
    return doubt.removeprefix(DOUBT_PREFIX).rpartition("@")[0]


def lost_gen(doubt: str) -> int:
    """The generation a lost holder was lost in: 1 for ``doubt:sub:3@1`` and ``doubt:agent:eu-1@1#2``
    (agent ids hold neither ``@`` nor ``#``)."""
    return int(doubt.rpartition("@")[2].partition("#")[0])
