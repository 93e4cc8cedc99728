"""Redis key names.

Everything one atomic decision needs shares a hash tag: the main bucket and its
pending transfers live under ``{b:<budget>}``, each sub-bucket and the records of
the requests it served under ``{b:<budget>:<k>}``, so a Redis Cluster spreads one
hot budget's sub-buckets over shards. A request id's claim lives under its own
tag ``{q:<id>}`` because ids are global across budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

MAIN = "main"


def sub_holder(index: int) -> str:
    return f"sub:{index}"


def parse_holder(holder: str) -> int | None:
    """Sub-bucket index of a holder name like ``sub:3``; None for ``main``."""
    if holder == MAIN:
        return None
    prefix, _, index = holder.partition(":")
    if prefix != "sub" or not index.isdigit():
        raise ValueError(f"not a center holder: {holder!r}")
    return int(index)


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


def bucket_keys(budget_id: str, holder: str) -> BucketKeys:
    index = parse_holder(holder)
    return main_keys(budget_id) if index is None else sub_keys(budget_id, index)


def claim_key(request_id: str) -> str:
    return "{q:" + request_id + "}"
