"""Every key names exactly one (budget, holder, kind, name), whatever the ids hold: the key of each
is read back by ``parse_key`` into the same four, so two different ones never share a key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quota_center.buckets import keys
from quota_center.buckets.keys import KeyOwner, NotAKey, parse_key
from quota_center.holders import MAIN, agent_holder, sub_holder

# Ids that look like each other's keys: separators, digits, the letters of the tag's markers.
TRICKY = st.text(alphabet=":as0123{}bkq-._9A", min_size=1, max_size=12)
ANY = st.text(min_size=1, max_size=12)
BUDGETS = st.one_of(TRICKY, ANY)
HOLDERS = st.one_of(
    st.just(MAIN),
    st.integers(min_value=0, max_value=10_000).map(sub_holder),
    st.one_of(TRICKY, ANY).map(agent_holder),
)


def key_of(owner: KeyOwner) -> str:
    bucket = keys.bucket_keys(owner.budget, owner.holder)
    return {
        "main": bucket.state,
        "sub": bucket.state,
        "agent": bucket.state,
        "pend": bucket.pending,
        "agents": keys.agents_set(owner.budget),
        "resv": bucket.expiries,
        "req": bucket.request(owner.name),
        "in": bucket.credit_marker(owner.name),
    }[owner.kind]


@st.composite
def owners(draw: st.DrawFn) -> KeyOwner:
    budget, holder = draw(BUDGETS), draw(HOLDERS)
    kinds = ["pend", "req", "in", {"m": "main", "s": "sub", "a": "agent"}[holder[0]]]
    if holder == MAIN:
        kinds.append("agents")
    if holder.startswith("sub:"):
        kinds.append("resv")
    kind = draw(st.sampled_from(kinds))
    name = draw(st.one_of(TRICKY, ANY)) if kind in ("req", "in") else ""
    return KeyOwner(budget, holder, kind, name)


@given(owners())
def test_a_key_reads_back_as_what_it_was_made_for(owner: KeyOwner) -> None:
    assert parse_key(key_of(owner)) == owner


@given(owners(), owners())
def test_two_owners_share_no_key(a: KeyOwner, b: KeyOwner) -> None:
    assert (key_of(a) == key_of(b)) == (a == b)


@given(st.one_of(TRICKY, ANY))
def test_a_claim_reads_back_as_its_request_id(request_id: str) -> None:
    assert parse_key(keys.claim_key(request_id)) == KeyOwner("", "", "claim", request_id)


def test_the_ids_that_shared_a_tag_in_the_first_layout_do_not() -> None:
    # X:1's main was sub-bucket 1 of X; X:a:7's main was sub 7 of X:a and agent 7's holding of X.
    assert keys.main_keys("X:1").tag != keys.sub_keys("X", 1).tag
    tags = {keys.main_keys("X:a:7").tag, keys.sub_keys("X:a", 7).tag, keys.agent_keys("X", "7").tag}
    assert len(tags) == 3
    assert keys.main_keys("X:1").pending != keys.sub_keys("X", 1).pending


@pytest.mark.parametrize(
    "text", ["{b:X}:main", "{bk:2:X}:main", "{bk:1:X}:sub", "{bk:1:X:s01}:sub", "{bk:1:X}:main:x", "{bk:1:X}"]
)
def test_what_no_function_builds_is_not_a_key(text: str) -> None:
    with pytest.raises(NotAKey):
        parse_key(text)
