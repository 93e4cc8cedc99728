"""Redis key names.

Everything one atomic decision needs shares a hash tag: the main bucket and its
pending transfers live under ``{b:<budget>}``, each sub-bucket and the records of
the requests it served under ``{b:<budget>:<k>}``, so a Redis Cluster spreads one
hot budget's sub-buckets over shards. A request id's claim lives under its own
tag ``{q:<id>}`` because ids are global across budgets. A region agent's holding of a
budget is a bucket of its own under ``{b:<budget>:a:<agent>}``; the agents that hold a
budget are listed in a set under main's tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from quota_center.holders import MAIN, agent_holder, agent_of, parse_holder, sub_holder


@dataclass(frozen=True, slots=True)
class BucketKeys:
    """Keys of one bucket (main or a sub-bucket): its hash and its pending transfers."""

    holder: str
    state: str
    pending: str
    tag: str

    def credit_marker(self, transfer_id: str) -> str:
        return f"{self.tag}:in:{transfer_id}"

    def request(self, request_id: str) -> str:
        return f"{self.tag}:req:{request_id}"


def main_keys(budget_id: str) -> BucketKeys:
    tag = "{b:" + budget_id + "}"
    return BucketKeys(MAIN, f"{tag}:main", f"{tag}:pend", tag)


def sub_keys(budget_id: str, index: int) -> BucketKeys:
    tag = "{b:" + budget_id + ":" + str(index) + "}"
    return BucketKeys(sub_holder(index), f"{tag}:sub", f"{tag}:pend", tag)


def agent_keys(budget_id: str, agent_id: str) -> BucketKeys:
    tag = "{b:" + budget_id + ":a:" + agent_id + "}"
    return BucketKeys(agent_holder(agent_id), f"{tag}:agent", f"{tag}:pend", tag)


def agents_set(budget_id: str) -> str:
    """The set of agent ids that have held ``budget_id`` (under main's tag)."""
    return "{b:" + budget_id + "}:agents"


def bucket_keys(budget_id: str, holder: str) -> BucketKeys:
    agent = agent_of(holder)
    if agent is not None:
        return agent_keys(budget_id, agent)
    index = parse_holder(holder)
    return main_keys(budget_id) if index is None else sub_keys(budget_id, index)


def claim_key(request_id: str) -> str:
    return "{q:" + request_id + "}"
