"""Typed calls on the agent scripts (``lua/agent_*.lua``): an agent's holding of a budget in Redis."""

from __future__ import annotations

from dataclasses import dataclass

from quota_center.buckets import keys
from quota_center.buckets.store import BucketStore
from quota_center.holders import agent_doubt_prefix, agent_holder
from quota_rules.usage import Usage


@dataclass(frozen=True, slots=True)
class Reported:
    """What agent_report.lua answered: the holding after the report, and what it released."""

    status: str
    version: int
    balance: int
    applied: Usage
    released: int
    unbacked: int = 0  # returns applied to the counters but not the balance (agent_report.lua)


@dataclass(frozen=True, slots=True)
class Expired:
    status: str
    amount: int
    transfer_id: str
    holder: str


def _int(value: object) -> int:
    return int(str(value))


class AgentStore:
    def __init__(self, buckets: BucketStore) -> None:
        self.buckets = buckets
        self.redis = buckets.redis
        self.scripts = buckets.scripts

    async def report(
        self,
        budget_id: str,
        agent_id: str,
        gen: int,
        usage: Usage,
        *,
        lease_until_ms: int,
        transfer_id: str,
        now_ms: int,
    ) -> Reported:
        k = keys.agent_keys(budget_id, agent_id)
        reply = await self.scripts.run(
            "agent_report",
            [k.state, k.pending],
            [
                gen,
                usage.seq,
                usage.consumed,
                usage.returned,
                usage.reserved,
                usage.released,
                lease_until_ms,
                transfer_id,
                now_ms,
            ],
        )
        v = [_int(x) for x in reply[1:]]
        return Reported(str(reply[0]), v[0], v[1], Usage(v[2], v[3], v[4], v[5], v[6]), v[7], v[8])

    async def expire(self, budget_id: str, agent_id: str, gen: int, *, now_ms: int, skew_ms: int) -> Expired:
        k = keys.agent_keys(budget_id, agent_id)
        tid_prefix = f"t:{budget_id}:lose:{agent_id}@{gen}#"
        holder_prefix = agent_doubt_prefix(agent_id, gen)
        reply = await self.scripts.run(
            "agent_expire", [k.state, k.pending], [now_ms, skew_ms, tid_prefix, holder_prefix]
        )
        return Expired(str(reply[0]), _int(reply[1]), str(reply[2]), str(reply[3]))

    async def restore(self, budget_id: str, agent_id: str, transfer_id: str, amount: int, gen: int) -> str:
        k = keys.agent_keys(budget_id, agent_id)
        reply = await self.scripts.run(
            "agent_restore",
            [k.state, k.credit_marker(transfer_id)],
            [amount, gen, self.buckets.retention_s],
        )
        return str(reply[0])

    async def carry(
        self, budget_id: str, agent_id: str, gen: int, doubt: str, *, free: int, reserved: int, consumed: int
    ) -> tuple[str, int, int]:
        """agent_carry.lua: (status, ver, bal) after carrying ``doubt`` into the holding."""
        k = keys.agent_keys(budget_id, agent_id)
        reply = await self.scripts.run("agent_carry", [k.state], [gen, doubt, free, reserved, consumed])
        return str(reply[0]), _int(reply[1]), _int(reply[2])

    async def fields(self, budget_id: str, agent_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.agent_keys(budget_id, agent_id).state)
        return {str(f): str(v) for f, v in raw.items()}

    async def register(self, budget_id: str, agent_id: str) -> None:
        await self.redis.sadd(keys.agents_set(budget_id), agent_id)

    async def agents(self, budget_id: str) -> list[str]:
        return sorted(str(a) for a in await self.redis.smembers(keys.agents_set(budget_id)))

    async def held(self, budget_id: str) -> dict[str, int]:
        """Balance per agent holder of the budget (what a reclaim could bring back); none at 0."""
        return {h: bal for h, bal in (await self.holdings(budget_id)).items() if bal}

    async def holdings(self, budget_id: str) -> dict[str, int]:
        """Balance per agent holder of the budget, 0 included (a missing holding counts 0)."""
        holders = [agent_holder(a) for a in await self.agents(budget_id)]
        balances = await self.buckets.balances(budget_id, holders)  # at once, not one after another
        return {h: bal or 0 for h, bal in zip(holders, balances, strict=True)}

    async def pending(self, budget_id: str, agent_id: str, transfer_id: str) -> str | None:
        """The pending record of a transfer out of the agent's holding; None once it is cleared."""
        raw = await self.redis.hget(keys.agent_keys(budget_id, agent_id).pending, transfer_id)
        return None if raw is None else str(raw)

    async def drop(self, budget_id: str, agent_id: str, gen: int) -> bool:
        """Delete the holding if it is of a generation older than ``gen`` (a rebuild replaced it):
        its hash and pending transfers. A holding of ``gen`` is kept (agent_drop.lua)."""
        k = keys.agent_keys(budget_id, agent_id)
        return _int(await self.scripts.run("agent_drop", [k.state, k.pending], [gen])) == 1
