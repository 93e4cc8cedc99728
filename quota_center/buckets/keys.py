"""Redis key names, and the one reading of a key back into what it belongs to.

Everything one atomic decision needs shares a hash tag: the main bucket and its pending
transfers live under main's tag, each sub-bucket and the records of the requests it served
under a tag of its own, so a Redis Cluster spreads one hot budget's sub-buckets over shards. A
request id's claim lives under its own tag ``{q:<id>}`` because ids are global across budgets. A
region agent's holding of a budget is a bucket of its own; the agents that hold a budget are
listed in a set under main's tag, next to the budget's sold-out mark (``budgets/sellout.py``).

A tag carries the budget id with its length in front, and a sub-bucket's index or an agent's id
(with its length) after it, each behind a letter of its own::

    {bk:<len>:<budget>}                      main
    {bk:<len>:<budget>:s<k>}                 sub-bucket k
    {bk:<len>:<budget>:a<len>:<agent>}       agent's holding

so no two budgets, holders or kinds can share a key whatever their ids hold (``X:1`` and ``X``,
``campaign`` and ``campaign:2026``): ``parse_key`` reads every key back into exactly one
(budget, holder, kind, name) and tests/quota_center/buckets/test_keys.py proves it for
adversarial ids. (The first layout, ``{b:<budget>}``, ``{b:<budget>:<k>}`` and
``{b:<budget>:a:<agent>}``, let ``X:1``'s main share a tag with sub-bucket 1 of ``X``;
``buckets/layout.py`` moves a Redis written that way. The prefixes differ, so no key of one
layout reads as a key of the other.)
"""

from __future__ import annotations

from dataclasses import dataclass

from quota_center.holders import MAIN, agent_holder, agent_of, parse_holder, sub_holder

# Names the key layout, so that a center finds out whether a Redis was written before it.
LAYOUT_KEY = "{quota}:layout"
LAYOUT = "2"

# Kinds of keys under a bucket's tag, after the tag. ``req`` and ``in`` carry a name after them.
STATE_KINDS = {MAIN: "main", "sub": "sub", "agent": "agent"}
FIXED_KINDS = ("main", "sub", "agent", "pend", "agents", "resv", "out")
NAMED_KINDS = ("req", "in")


@dataclass(frozen=True, slots=True)
class BucketKeys:
    """Keys of one bucket (main, a sub-bucket or an agent's holding): its hash and its pending
    transfers, and the names built on its tag."""

    holder: str
    state: str
    pending: str
    tag: str

    def credit_marker(self, transfer_id: str) -> str:
        return f"{self.tag}:in:{transfer_id}"

    def request(self, request_id: str) -> str:
        return f"{self.tag}:req:{request_id}"

    @property
    def expiries(self) -> str:
        """The sorted set of a sub-bucket's held reservations, by expiry."""
        return f"{self.tag}:resv"


def _budget_tag(budget_id: str, rest: str = "") -> str:
    return "{bk:" + str(len(budget_id)) + ":" + budget_id + rest + "}"


def main_keys(budget_id: str) -> BucketKeys:
    tag = _budget_tag(budget_id)
    return BucketKeys(MAIN, f"{tag}:main", f"{tag}:pend", tag)


def sub_keys(budget_id: str, index: int) -> BucketKeys:
    tag = _budget_tag(budget_id, f":s{index}")
    return BucketKeys(sub_holder(index), f"{tag}:sub", f"{tag}:pend", tag)


def agent_keys(budget_id: str, agent_id: str) -> BucketKeys:
    tag = _budget_tag(budget_id, f":a{len(agent_id)}:{agent_id}")
    return BucketKeys(agent_holder(agent_id), f"{tag}:agent", f"{tag}:pend", tag)


def agents_set(budget_id: str) -> str:
    """The set of agent ids that have held ``budget_id`` (under main's tag)."""
    return _budget_tag(budget_id) + ":agents"


def sold_out_key(budget_id: str) -> str:
    """The budget's sold-out mark (under main's tag, with main's ``supply`` version it names)."""
    return _budget_tag(budget_id) + ":out"


def bucket_keys(budget_id: str, holder: str) -> BucketKeys:
    agent = agent_of(holder)
    if agent is not None:
        return agent_keys(budget_id, agent)
    index = parse_holder(holder)
    return main_keys(budget_id) if index is None else sub_keys(budget_id, index)


def claim_key(request_id: str) -> str:
    return "{q:" + request_id + "}"


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """What a key belongs to. ``budget`` and ``holder`` are empty for a request id's claim;
    ``name`` is the request or transfer id of a ``req``/``in``/``claim`` key, else empty."""

    budget: str
    holder: str
    kind: str
    name: str = ""


class NotAKey(ValueError):
    """A string that no function here builds."""


def _length(text: str, start: int) -> tuple[int, int]:
    """The decimal length written at ``start`` up to its ':', and where what it measures starts."""
    colon = text.find(":", start)
    digits = text[start:colon] if colon > start else ""
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        raise NotAKey(f"no length at {start} of {text!r}")
    return int(digits), colon + 1


def parse_key(key: str) -> KeyOwner:
    """The one (budget, holder, kind, name) whose key is ``key``; NotAKey if none is."""
    if key.startswith("{q:") and key.endswith("}") and len(key) > 4:
        return KeyOwner("", "", "claim", key[3:-1])
    if not key.startswith("{bk:"):
        raise NotAKey(f"not a bucket key: {key!r}")
    size, start = _length(key, 4)
    budget, at = key[start : start + size], start + size
    if len(budget) != size:
        raise NotAKey(f"budget id cut short in {key!r}")
    holder = MAIN
    if key.startswith(":s", at):
        end = key.find("}", at)
        index = key[at + 2 : end] if end > 0 else ""
        if not index.isdigit() or (len(index) > 1 and index[0] == "0"):
            raise NotAKey(f"bad sub-bucket index in {key!r}")
        holder, at = sub_holder(int(index)), end
    elif key.startswith(":a", at):
        size, start = _length(key, at + 2)
        agent = key[start : start + size]
        if len(agent) != size or size == 0:
            raise NotAKey(f"agent id cut short in {key!r}")
        holder, at = agent_holder(agent), start + size
    if not key.startswith("}:", at):
        raise NotAKey(f"no end of tag at {at} of {key!r}")
    kind, _, name = key[at + 2 :].partition(":")
    expected = STATE_KINDS.get(holder.partition(":")[0] if holder != MAIN else MAIN)
    if kind in NAMED_KINDS:
        return KeyOwner(budget, holder, kind, name)
    if name or kind not in FIXED_KINDS or (kind in STATE_KINDS.values() and kind != expected):
        raise NotAKey(f"unknown kind {kind!r} in {key!r}")
    if (kind in ("agents", "out") and holder != MAIN) or (kind == "resv" and not holder.startswith("sub:")):
        raise NotAKey(f"{kind!r} does not belong to {holder} in {key!r}")
    return KeyOwner(budget, holder, kind)
