"""(a) One hot budget over a Redis Cluster: its sub-buckets sit on several shards, and the center
serves deductions from every one of them."""

from __future__ import annotations

import pytest

from devstack import RedisCluster, RedisReplyError
from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import CONFLICT, EXISTS, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import Client
from tests.helpers.shards import bucket_keys, hget_int, keyslot, owner

SUB_BUCKETS = 8


async def test_a_hot_budget_is_spread_over_shards_and_served_on_every_one(
    healthy_cluster: RedisCluster, client: Client
) -> None:
    cluster = healthy_cluster
    budget_id = "hot-spread"  # fixed: its key slots, hence the shards, are the same on every run
    await create(client, budget_id, 100_000, sub_buckets=SUB_BUCKETS, min_slice=100, max_slice=1_000)
    subs = {h: k for h, k in bucket_keys(budget_id, SUB_BUCKETS).items() if h != "main"}
    slots = {h: keyslot(cluster, k) for h, k in subs.items()}
    owners = {h: owner(cluster, k).port for h, k in subs.items()}
    assert len(set(slots.values())) == SUB_BUCKETS, slots
    assert len(set(owners.values())) >= 2, f"all sub-buckets on one shard: {owners}"
    # The buckets really are on those nodes: the owner has the key, every other node redirects there.
    for holder, key in subs.items():
        for node in cluster.nodes:
            if node.port == owners[holder]:
                assert node.command("EXISTS", key) == 1, (holder, node)
            else:
                with pytest.raises(RedisReplyError, match=f"MOVED {slots[holder]} .*:{owners[holder]}$"):
                    node.command("EXISTS", key)

    amounts = {f"{budget_id}-{i}": 1 + i % 17 for i in range(64)}
    answers = {rid: await deduct(client, budget_id, rid, a) for rid, a in amounts.items()}
    assert {a.code for a in answers.values()} == {OK}
    consumed = {h: hget_int(cluster, k, "consumed") for h, k in subs.items()}
    assert all(c is not None and c > 0 for c in consumed.values()), f"a sub-bucket served nothing: {consumed}"
    assert sum(c or 0 for c in consumed.values()) == sum(amounts.values())
    served_by_node: dict[int, int] = {}
    for holder, c in consumed.items():
        served_by_node[owners[holder]] = served_by_node.get(owners[holder], 0) + (c or 0)
    assert len(served_by_node) == len(set(owners.values()))

    # Exactly-once still holds with claims {q:id} and records {b:id:k} on different shards.
    first = next(iter(amounts))
    again = await deduct(client, budget_id, first, amounts[first])
    assert (again.code, again.amount) == (EXISTS, amounts[first])
    assert (await deduct(client, budget_id, first, amounts[first] + 1)).code == CONFLICT
    back = await refund(client, budget_id, f"{first}-r", first, 1)
    assert (back.code, back.refundable) == (OK, amounts[first] - 1)
    b = await get(client, budget_id)
    assert b.consumed == sum(amounts.values()) - 1
    report = await assert_balanced(client, budget_id)
    print(f"\nsub-bucket owners {sorted(owners.values())}, units served per node {served_by_node}")
    assert report.consumed == b.consumed


async def test_top_up_pause_and_resume_reach_every_shard(client: Client, budget_id: str) -> None:
    """Administration changes every bucket of a budget, wherever it lives (set_state on each,
    a top-up credited to main), and the ledger agrees."""
    await create(client, budget_id, 1_000, sub_buckets=SUB_BUCKETS, min_slice=10, max_slice=50)
    for i in range(16):
        assert (await deduct(client, budget_id, f"{budget_id}-{i}", 10)).code == OK
    topped = await client.admin.TopUp(
        apb.TopUpRequest(budget_id=budget_id, request_id=f"{budget_id}-top", amount=500, actor="test")
    )
    assert topped.code == OK, topped.message
    paused = await client.admin.PauseBudget(apb.ChangeStateRequest(budget_id=budget_id, actor="test"))
    assert paused.code == OK, paused.message
    # Every sub-bucket refuses, not only the one a single request lands on.
    answers = [await deduct(client, budget_id, f"{budget_id}-p{i}", 1) for i in range(32)]
    assert {a.code for a in answers} == {pb.RESULT_CODE_BUDGET_PAUSED}
    resumed = await client.admin.ResumeBudget(apb.ChangeStateRequest(budget_id=budget_id, actor="test"))
    assert resumed.code == OK, resumed.message
    answers = [await deduct(client, budget_id, f"{budget_id}-r{i}", 1) for i in range(32)]
    assert {a.code for a in answers} == {OK}
    b = await get(client, budget_id)
    assert (b.total, b.consumed) == (1_500, 160 + 32)
    await assert_balanced(client, budget_id)
