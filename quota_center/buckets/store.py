"""Typed calls on the bucket scripts: the only code that changes bucket state in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from redis.asyncio import RedisCluster

from quota_center.buckets import keys
from quota_center.buckets.scripts import RedisClient, Scripts
from quota_center.buckets.seen import Seen
from quota_center.holders import agent_holder

TakeMode = Literal["exact", "upto", "in"]
# Budgets whose buckets (or agents' sets) one read_buckets.lua (read_sets.lua) call reads.
BUDGETS_PER_READ = 50


@dataclass(frozen=True, slots=True)
class Outcome:
    """A script's answer: its status word and up to two integers.

    ``gen`` (deduct and refund only): the sub-bucket's generation when it served the request,
    0 when there is none; the write-behind spend log records it.
    """

    status: str
    value: int = 0
    extra: int = 0
    gen: int = 0
    # deduct only: the pool (sub-bucket 0) answered, in the same call (docs/center.md#end-game).
    pooled: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A transfer taken from ``source`` (or, when ``target == source``, an incoming credit)."""

    transfer_id: str
    source: str
    target: str
    amount: int
    gen: int
    created_ms: int

    @property
    def incoming(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True, slots=True)
class BucketView:
    holder: str
    balance: int
    consumed: int
    gen: int
    state: str
    pending: tuple[Pending, ...] = field(default=())
    reserved: int = 0
    draws: int = 0  # deductions and confirmations it served (sizes slices: quota_rules/rates.py)


def _outcome(reply: list[object]) -> Outcome:
    status = str(reply[0])
    value = int(str(reply[1])) if len(reply) > 1 else 0
    extra = int(str(reply[2])) if len(reply) > 2 else 0
    return Outcome(status, value, extra)


def _served(reply: list[object], gen_at: int) -> Outcome:
    """A deduct or refund answer: the generation comes after the script's integers. A deduct
    answered by the pool in the same call (one server) says so after it: ``pooled``."""
    gen = int(str(reply[gen_at])) if len(reply) > gen_at else 0
    extra = int(str(reply[2])) if gen_at > 2 else 0
    pooled = gen_at == 2 and len(reply) > 3 and int(str(reply[3])) == 1
    return Outcome(str(reply[0]), int(str(reply[1])), extra, gen, pooled)


def _claim_keys(budget_id: str, index: int, request_id: str) -> list[str]:
    """deduct.lua's keys on one server: the sub-bucket, the claim and, unless it is the pool
    itself, the pool (sub-bucket 0) to go on to when the sub-bucket answers POOLED."""
    sub = keys.sub_keys(budget_id, index)
    found = [sub.state, sub.request(request_id), keys.claim_key(request_id)]
    if index != 0:
        pool = keys.sub_keys(budget_id, 0)
        found += [pool.state, pool.request(request_id)]
    return found


def _texts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """Hash fields as text. The client decodes responses (``connect`` refuses a URL that turns
    that off), so this only narrows the type; it copies nothing, since an audit of a page reads
    thousands of hashes."""
    return cast(dict[str, str], raw)


def _pairs(flat: list[str]) -> Mapping[bytes | str, bytes | str]:
    """A hash from HGETALL's flat field/value list (as a script returns it); most are empty."""
    it = iter(flat)
    return cast(Mapping[bytes | str, bytes | str], dict(zip(it, it, strict=True)))


def _sellout_keys(budget_id: str) -> list[str]:
    return [keys.main_keys(budget_id).state, keys.sold_out_key(budget_id)]


def parse_pending(source: str, transfer_id: str, record: str) -> Pending:
    amount, target, gen, created = record.split("|")
    return Pending(transfer_id, source, target, int(amount), int(gen), int(created))


def _view(holder: str, fields: dict[str, str], records: dict[str, str]) -> BucketView:
    pending = tuple(parse_pending(holder, tid, rec) for tid, rec in sorted(records.items()))
    return BucketView(
        holder=holder,
        balance=int(fields.get("bal", 0)),
        consumed=int(fields.get("consumed", 0)),
        gen=int(fields.get("gen", 0)),
        state=fields.get("state", ""),
        pending=pending,
        reserved=int(fields.get("reserved", 0)),
        draws=int(fields.get("draws", 0)),
    )


class BucketStore:
    """Bucket operations of one budget's main bucket and sub-buckets."""

    def __init__(self, redis: RedisClient, retention_s: int, window_s: int | None = None) -> None:
        self.redis = redis
        self.scripts = Scripts(redis)
        # Transfers' credit markers, reservations and agents' reports are kept this long.
        self.retention_s = retention_s
        # A request's claim and its deduction's or return's record are kept this long; the seen
        # filters (set once the ledger's identity is known) and the spend log remember it after.
        self.window_s = retention_s if window_s is None else window_s
        self.seen: Seen | None = None

    def _seen(self, request_id: str, checked: bool = False) -> list[str | int]:
        """deduct.lua's ARGV[5..]: the filters' parameters on one server, nothing on a cluster
        (the caller tests and adds there, seen.lua)."""
        if self.seen is None or not self.one_server:
            return []
        return ["1" if checked else "0", *self.seen.args(request_id)]

    async def claim(self, request_id: str, fingerprint: str) -> str | None:
        """Bind ``request_id`` to ``fingerprint`` unless it is bound already; return the earlier binding."""
        previous = await self.redis.set(
            keys.claim_key(request_id), fingerprint, nx=True, get=True, ex=self.window_s
        )
        return None if previous is None else str(previous)

    async def claimed(self, request_id: str) -> bool:
        """Whether ``request_id`` is bound at the center (served or forwarded here, within the window)."""
        # GET, not EXISTS: a cluster client splits EXISTS by slot through a pipeline, which lacks
        # the single-command path's handling of a connection closed under it (buckets/client.py).
        return await self.redis.get(keys.claim_key(request_id)) is not None

    async def bind(self, request_id: str, fingerprint: str) -> None:
        """Bind ``request_id`` to ``fingerprint`` whatever it is bound to now: after a Redis loss,
        to what the spend log says the id did before it."""
        await self.redis.set(keys.claim_key(request_id), fingerprint, ex=self.window_s)

    async def deduct(self, budget_id: str, index: int, request_id: str, amount: int, gen: int = 0) -> Outcome:
        """Spend on sub-bucket ``index``; ``gen`` (0: any) is the generation the caller expects."""
        sub = keys.sub_keys(budget_id, index)
        seen = self._seen(request_id)
        reply = await self.scripts.run(
            "deduct", [sub.state, sub.request(request_id)], [amount, self.window_s, gen, "", *seen]
        )
        return _served(reply, 2)

    @property
    def one_server(self) -> bool:
        """True for one Redis server (not a cluster): every key is reachable from one script."""
        return not isinstance(self.redis, RedisCluster)

    async def claim_and_deduct(
        self,
        request_id: str,
        fingerprint: str,
        budget_id: str,
        index: int,
        amount: int,
        gen: int,
        *,
        checked: bool = False,
    ) -> Outcome:
        """Claim ``request_id`` and deduct in one EVALSHA (one Redis server only).

        deduct.lua binds the id to ``fingerprint`` if it is free and goes on only if it holds
        ``fingerprint``: UNCLAIMED when the id is bound to another request (nothing done); RECALL
        when the claim is free but the seen filters may hold the id, unless ``checked`` (the spend
        log was consulted).
        """
        seen = self._seen(request_id, checked)
        reply = await self.scripts.run(
            "deduct",
            _claim_keys(budget_id, index, request_id),
            [amount, self.window_s, gen, fingerprint, *seen],
        )
        return _served(reply, 2)

    async def claim_and_deduct_many(
        self, calls: Sequence[tuple[str, str, str, int, int, int]]
    ) -> list[Outcome | None]:
        """``claim_and_deduct`` of each (request id, fingerprint, budget, index, amount, gen), all
        sent in one pipeline (one round trip; one Redis server only). The scripts run one after
        another, as separate calls would. None for a call that failed (a script not loaded, an
        error reply): it did nothing, and the caller runs it again on its own."""
        async with self.redis.pipeline(transaction=False) as pipe:
            sha = self.scripts.sha("deduct")
            for request_id, fingerprint, budget_id, index, amount, gen in calls:
                names = _claim_keys(budget_id, index, request_id)
                seen = self._seen(request_id)
                pipe.evalsha(sha, len(names), *names, amount, self.window_s, gen, fingerprint, *seen)
            replies = await pipe.execute(raise_on_error=False)
        return [None if isinstance(reply, Exception) else _served(reply, 2) for reply in replies]

    async def refund(
        self,
        budget_id: str,
        index: int,
        deduction_id: str,
        request_id: str,
        amount: int,
        gen: int = 0,
        restore: tuple[int, int] | None = None,
    ) -> Outcome:
        """Refund on sub-bucket ``index``. ``restore`` = (amount, returned) of a deduction made
        before a Redis loss, from the spend log: its record is recreated if it is missing."""
        sub = keys.sub_keys(budget_id, index)
        extra = [] if restore is None else [restore[0], restore[1]]
        reply = await self.scripts.run(
            "refund",
            [sub.state, sub.request(deduction_id), sub.request(request_id)],
            [amount, deduction_id, self.window_s, gen, *extra],
        )
        return _served(reply, 3)

    async def snapshot(
        self, budget_id: str, holders: list[str], gen: int, *, moving_of: int
    ) -> tuple[list[int | None], int]:
        """Balances of ``holders`` (None: missing) and the amount of the pending transfers of
        ``gen`` of the first ``moving_of`` of them plus those of the others on their way to main
        (agents' releases), read in one step (snapshot.lua; one Redis server only)."""
        names: list[str] = []
        for holder in holders:
            bucket = keys.bucket_keys(budget_id, holder)
            names += [bucket.state, bucket.pending]
        reply = [int(str(x)) for x in await self.scripts.run("snapshot", names, [gen, moving_of])]
        return [None if b < 0 else b for b in reply[:-1]], reply[-1]

    async def open_pool(self, budget_id: str, index: int, gen: int) -> Outcome:
        """Mark sub-bucket ``index`` (not 0) to send new deductions to sub-bucket 0 (pool_open.lua)."""
        reply = await self.scripts.run("pool_open", [keys.sub_keys(budget_id, index).state], [gen])
        return _outcome(reply)

    async def sell_out_read(self, budget_id: str) -> tuple[int, int, bool, int]:
        """(main's generation, supply version, marked sold out, ms the mark still holds)."""
        reply = await self.scripts.run("sellout_read", _sellout_keys(budget_id), [])
        gen, supply, marked, ttl = (int(str(x)) for x in reply)
        return gen, supply, bool(marked), ttl

    async def sell_out_mark(self, budget_id: str, supply: int, ttl_ms: int) -> Outcome:
        """Mark the budget sold out if its supply version is still ``supply`` (sellout_mark.lua)."""
        return _outcome(await self.scripts.run("sellout_mark", _sellout_keys(budget_id), [supply, ttl_ms]))

    async def sell_out_clear(self, budget_id: str) -> tuple[bool, int, int]:
        """Bump the supply version and drop the mark: (whether it was marked, the new version,
        main's generation)."""
        was, version, gen = await self.scripts.run("sellout_clear", _sellout_keys(budget_id), [])
        return bool(int(str(was))), int(str(version)), int(str(gen))

    async def take(
        self,
        budget_id: str,
        source: str,
        transfer_id: str,
        amount: int,
        mode: TakeMode,
        gen: int,
        target: str,
        now_ms: int,
    ) -> Outcome:
        bucket = keys.bucket_keys(budget_id, source)
        reply = await self.scripts.run(
            "transfer_take",
            [bucket.state, bucket.pending],
            [transfer_id, amount, mode, gen, target, now_ms],
        )
        return _outcome(reply)

    async def credit(self, budget_id: str, target: str, transfer_id: str, amount: int, gen: int) -> Outcome:
        bucket = keys.bucket_keys(budget_id, target)
        reply = await self.scripts.run(
            "transfer_credit",
            [bucket.state, bucket.credit_marker(transfer_id)],
            [amount, gen, self.retention_s],
        )
        return _outcome(reply)

    async def clear(self, budget_id: str, source: str, transfer_id: str) -> None:
        await self.redis.hdel(keys.bucket_keys(budget_id, source).pending, transfer_id)

    async def restore(self, budget_id: str, source: str, transfer_id: str) -> Outcome:
        bucket = keys.bucket_keys(budget_id, source)
        reply = await self.scripts.run(
            "transfer_restore", [bucket.state, bucket.pending], [transfer_id, source]
        )
        return _outcome(reply)

    async def init_bucket(self, budget_id: str, holder: str, balance: int, gen: int, state: str) -> Outcome:
        bucket = keys.bucket_keys(budget_id, holder)
        reply = await self.scripts.run("bucket_init", [bucket.state, bucket.pending], [balance, gen, state])
        return _outcome(reply)

    async def set_state(self, budget_id: str, holder: str, state: str) -> bool:
        bucket = keys.bucket_keys(budget_id, holder)
        return bool(await self.scripts.run("set_state", [bucket.state], [state]))

    async def credited(self, budget_id: str, holder: str, transfer_id: str) -> bool:
        marker = keys.bucket_keys(budget_id, holder).credit_marker(transfer_id)
        return bool(await self.redis.exists(marker))

    async def agent_holders(self, budget_id: str) -> list[str]:
        """Holder names of the region agents that have held ``budget_id`` (``agent:<id>``)."""
        members = await self.redis.smembers(keys.agents_set(budget_id))
        return sorted(agent_holder(str(a)) for a in members)

    async def claim_static_share(self, budget_id: str, holder: str) -> bool:
        """Mark ``holder``'s one static share as taken; True for the one caller that marked it.

        HSETNX on the holder's own hash: however many center processes ask at once, one wins.
        """
        return bool(await self.redis.hsetnx(keys.bucket_keys(budget_id, holder).state, "static_share", 1))

    async def budget_state(self, budget_id: str) -> str | None:
        """The state main carries (active, paused, closed); None if main is missing."""
        raw = await self.redis.hget(keys.main_keys(budget_id).state, "state")
        return None if raw is None else str(raw)

    async def balance(self, budget_id: str, holder: str) -> int | None:
        raw = await self.redis.hget(keys.bucket_keys(budget_id, holder).state, "bal")
        return None if raw is None else int(raw)

    async def balances(self, budget_id: str, holders: list[str]) -> list[int | None]:
        """Balances of several buckets, read concurrently (they may sit on different shards)."""
        return list(await asyncio.gather(*(self.balance(budget_id, h) for h in holders)))

    async def read(self, budget_id: str, holder: str) -> BucketView | None:
        """The bucket's fields and pending transfers, or None if Redis does not have it."""
        bucket = keys.bucket_keys(budget_id, holder)
        fields = _texts(await self.redis.hgetall(bucket.state))
        if not fields:
            return None
        return _view(holder, fields, _texts(await self.redis.hgetall(bucket.pending)))

    async def read_many(self, buckets: Sequence[tuple[str, str]]) -> list[BucketView | None]:
        """``read`` of each (budget, holder), in one round trip: on one server a read_buckets.lua
        call per budget, pipelined; on a cluster a pipeline the client splits by node. As with
        ``read``, a bucket's two hashes may be two reads: the audit, which reads every bucket
        twice, tells when they moved in between."""
        replies = await self._hashes(buckets, pending_only=False)
        views: list[BucketView | None] = []
        for n, (_, holder) in enumerate(buckets):
            fields = _texts(replies[2 * n])
            views.append(_view(holder, fields, _texts(replies[2 * n + 1])) if fields else None)
        return views

    async def pending_many(self, buckets: Sequence[tuple[str, str]]) -> list[tuple[Pending, ...]]:
        """The pending transfers of each (budget, holder), in one round trip (none for a bucket
        Redis does not have): what the sweeper looks for, without the rest of each bucket."""
        replies = await self._hashes(buckets, pending_only=True)
        return [
            tuple(parse_pending(holder, tid, rec) for tid, rec in sorted(_texts(replies[2 * n + 1]).items()))
            for n, (_, holder) in enumerate(buckets)
        ]

    async def _hashes(
        self, buckets: Sequence[tuple[str, str]], *, pending_only: bool
    ) -> list[Mapping[bytes | str, bytes | str]]:
        """Each bucket's hash (empty with ``pending_only``) and pending-transfer hash, in order."""
        if self.one_server:
            return await self._read_by_budget(buckets, pending_only=pending_only)
        async with self.redis.pipeline(transaction=False) as pipe:
            for budget_id, holder in buckets:
                bucket = keys.bucket_keys(budget_id, holder)
                if not pending_only:
                    pipe.hgetall(bucket.state)
                pipe.hgetall(bucket.pending)
            replies = await pipe.execute()
        if pending_only:
            empty: Mapping[bytes | str, bytes | str] = {}
            return [h for reply in replies for h in (empty, reply)]
        return list(replies)

    async def _read_by_budget(
        self, buckets: Sequence[tuple[str, str]], *, pending_only: bool, again: bool = True
    ) -> list[Mapping[bytes | str, bytes | str]]:
        """One server: a read_buckets.lua call per budget (its buckets in one step), pipelined; the
        hashes in the order asked."""
        by_budget: dict[str, list[str]] = {}
        for budget_id, holder in buckets:
            bucket = keys.bucket_keys(budget_id, holder)
            by_budget.setdefault(budget_id, []).extend([bucket.state, bucket.pending])
        # A few budgets to a call: a pipeline's every reply costs the client a parse and a timeout
        # of its own, which for a page of small budgets cost more than Redis's work.
        groups = [
            list(by_budget)[i : i + BUDGETS_PER_READ] for i in range(0, len(by_budget), BUDGETS_PER_READ)
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            sha = self.scripts.sha("read_buckets")
            for group in groups:
                names = [name for budget_id in group for name in by_budget[budget_id]]
                pipe.evalsha(sha, len(names), *names, "pending" if pending_only else "all")
            replies = await pipe.execute(raise_on_error=False)
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            if not again:
                raise failed
            await self.scripts.load("read_buckets")  # not loaded yet (NOSCRIPT): load, once more
            return await self._read_by_budget(buckets, pending_only=pending_only, again=False)
        flat: dict[str, list[list[str]]] = {}  # budget -> its hashes' field/value lists
        for group, reply in zip(groups, replies, strict=True):
            at = 0
            for budget_id in group:
                n = len(by_budget[budget_id])
                flat[budget_id] = reply[at : at + n]
                at += n
        cursor = dict.fromkeys(by_budget, 0)
        out: list[Mapping[bytes | str, bytes | str]] = []
        for budget_id, _ in buckets:
            i = cursor[budget_id]
            h = flat[budget_id]
            out.append(_pairs(h[i]))
            out.append(_pairs(h[i + 1]))
            cursor[budget_id] = i + 2
        return out

    async def agent_holders_many(self, budget_ids: Sequence[str]) -> list[list[str]]:
        """``agent_holders`` of each budget, in one round trip (on one server, read_sets.lua calls
        of ``BUDGETS_PER_READ`` budgets each)."""
        names = [keys.agents_set(b) for b in budget_ids]
        replies: list[list[str]] = []
        if self.one_server and names:
            groups = [names[i : i + BUDGETS_PER_READ] for i in range(0, len(names), BUDGETS_PER_READ)]
            for _ in range(2):
                async with self.redis.pipeline(transaction=False) as pipe:
                    sha = self.scripts.sha("read_sets")
                    for group in groups:
                        pipe.evalsha(sha, len(group), *group)
                    answers = await pipe.execute(raise_on_error=False)
                if not any(isinstance(a, Exception) for a in answers):
                    break
                await self.scripts.load("read_sets")  # not loaded yet (NOSCRIPT): load, once more
            else:
                raise next(a for a in answers if isinstance(a, Exception))
            replies = [members for answer in answers for members in answer]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.smembers(name)
                replies = [list(m) for m in await pipe.execute()]
        return [sorted(agent_holder(str(a)) for a in members) for members in replies]
