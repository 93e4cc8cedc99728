"""Moving a Redis written in the first key layout to the current one (``keys.py``).

The first layout put the budget id in the tag as it is: ``{b:<budget>}`` (main),
``{b:<budget>:<k>}`` (sub-bucket k), ``{b:<budget>:a:<agent>}`` (an agent's holding). A
budget id with ``:`` could share a tag with another budget's bucket (``X:1``'s main and sub-bucket
1 of ``X``); the current layout cannot. A key of the first layout says which bucket it is by its
state hash (``:main``, ``:sub``, ``:agent``); the other keys of a tag (pending transfers, request
records, credit markers, expiry set, agents set) belong to the one bucket whose state hash the tag
holds. A tag holding two buckets' state hashes was shared: its pending transfers and records are
mixed, so it is not moved, and the center refuses to start, naming it (an operator settles one
of the two budgets by hand first; see docs/operations.md).

``plan`` decides (pure); ``migrate`` moves key by key with DUMP/RESTORE (keeping TTLs) and then
deletes the old key, so a move cut short by a crash is finished by the next start: a key whose
new name exists already is only deleted. The layout marker is written last; once it is there, a start does not look again. (Keys of
the current layout start ``{bk:``, so a ``{b:`` key is always one of the first layout.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis.exceptions import RedisError, ResponseError

from quota_center.buckets import keys
from quota_center.buckets.scripts import RedisClient
from quota_center.holders import MAIN, agent_holder, sub_holder

log = logging.getLogger(__name__)

_STATE = {"main": "main", "sub": "sub", "agent": "agent"}


class SharedTag(RuntimeError):
    """Keys of the first layout that two buckets shared: they cannot be moved on their own."""


@dataclass(frozen=True, slots=True)
class Plan:
    moves: list[tuple[str, str]] = field(default_factory=list)  # (old key, new key)
    shared: dict[str, list[str]] = field(default_factory=dict)  # tag -> its state hashes
    unknown: list[str] = field(default_factory=list)  # keys of no bucket: left alone


def _split(key: str) -> tuple[str, str] | None:
    """(tag content, what follows the tag) of a first-layout bucket key."""
    if not key.startswith("{b:"):
        return None
    end = key.find("}")
    if end < 0 or not key.startswith("}:", end):
        return None
    return key[3:end], key[end + 2 :]


def _bucket(tag: str, state: str) -> tuple[str, str] | None:
    """(budget, holder) a first-layout tag names, read by the kind of its state hash."""
    if state == "main":
        return tag, MAIN
    if state == "sub":
        budget, _, index = tag.rpartition(":")
        return (budget, sub_holder(int(index))) if budget and index.isdigit() else None
    budget, sep, agent = tag.rpartition(":a:")
    return (budget, agent_holder(agent)) if sep and budget and agent else None


def _new_key(budget: str, holder: str, rest: str) -> str:
    bucket = keys.bucket_keys(budget, holder)
    return f"{bucket.tag}:{rest}"


def plan(found: Iterable[str]) -> Plan:
    """The moves that bring ``found`` (every ``{b:`` key of a Redis) to the current layout."""
    result = Plan()
    by_tag: dict[str, list[tuple[str, str]]] = {}
    for key in found:
        parts = _split(key)
        if parts is None:
            result.unknown.append(key)
            continue
        by_tag.setdefault(parts[0], []).append((key, parts[1]))
    for tag, members in sorted(by_tag.items()):
        states = sorted(rest for _, rest in members if rest in _STATE)
        buckets = {s: _bucket(tag, s) for s in states}
        named = {s: b for s, b in buckets.items() if b is not None}
        if len(named) > 1:
            result.shared["{b:" + tag + "}"] = states
            continue
        if not named:
            result.unknown.extend(key for key, _ in members)
            continue
        budget, holder = next(iter(named.values()))
        result.moves.extend((key, _new_key(budget, holder, rest)) for key, rest in members)
    return result


async def migrate(redis: RedisClient) -> int:
    """Bring ``redis`` to the current key layout, once; return how many keys were moved.

    Raises SharedTag (nothing of those tags moved, the marker not written) if the first layout
    had two buckets on one tag."""
    if await redis.get(keys.LAYOUT_KEY) == keys.LAYOUT:
        return 0
    found = [str(k) async for k in redis.scan_iter(match="{b:*", count=1000)]
    todo = plan(found)
    moved = 0
    for old, new in todo.moves:
        dumped = await redis.dump(old)
        if dumped is not None:
            ttl = await redis.pttl(old)
            try:
                await redis.restore(new, max(ttl, 0), dumped)
            except ResponseError as exc:
                if "BUSYKEY" not in str(exc):
                    raise
                # Restored by a start that stopped before deleting the old key.
        await redis.delete(old)
        moved += 1
        if moved % 10_000 == 0:
            log.info("key layout: %d of %d keys moved", moved, len(todo.moves))
    if todo.unknown:
        log.warning(
            "key layout: %d keys of no bucket left as they are, e.g. %s", len(todo.unknown), todo.unknown[:3]
        )
    if todo.shared:
        listed = "; ".join(f"{tag} holds {', '.join(states)}" for tag, states in todo.shared.items())
        raise SharedTag(
            f"{len(todo.shared)} Redis tags of the first key layout hold two buckets at once ({listed}):"
            " their pending transfers and request records are mixed; settle one of the two budgets"
            " by hand and delete the tag's keys, then start again (docs/operations.md)"
        )
    await redis.set(keys.LAYOUT_KEY, keys.LAYOUT)
    if moved:
        log.info("key layout: moved %d keys to layout %s", moved, keys.LAYOUT)
    return moved


async def migrate_when_reachable(redis: RedisClient, interval_s: float = 1.0) -> None:
    """``migrate`` once Redis answers: for a center started while Redis was down."""
    while True:
        try:
            await migrate(redis)
            return
        except RedisError as exc:
            log.warning("key layout: Redis not reachable (%s); trying again in %.0f s", exc, interval_s)
        await asyncio.sleep(interval_s)
