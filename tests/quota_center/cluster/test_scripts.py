"""(d) Every node forgets the Lua scripts (SCRIPT FLUSH, as after restarts or a failover): the next
calls get NOSCRIPT, reload the scripts on every primary and are answered as if nothing happened."""

from __future__ import annotations

import asyncio

from devstack import RedisCluster
from tests.helpers.calls import OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import CenterThread, Client
from tests.helpers.shards import info_section, stat

# The scripts a deduction and a return run (their SHA is what EVALSHA sends).
SCRIPTS = ("deduct", "refund", "transfer_take", "transfer_credit")


def center_sha(center: CenterThread, name: str) -> str:
    """The SHA1 the running center sends with EVALSHA for script ``name`` (taken from the
    center itself: the .lua file on disk may have changed since it started)."""
    assert center.center is not None
    return str(center.center.buckets.scripts._sha[name])


def cached(cluster: RedisCluster, sha: str) -> list[int]:
    """SCRIPT EXISTS of one script on every node: 1 where the node has it."""
    found = []
    for node in cluster.nodes:
        reply = node.command("SCRIPT", "EXISTS", sha)
        assert isinstance(reply, list)
        assert isinstance(reply[0], int)
        found.append(reply[0])
    return found


async def test_noscript_after_script_flush_on_every_node_is_recovered(
    healthy_cluster: RedisCluster, cluster_center: CenterThread, client: Client, budget_id: str
) -> None:
    cluster = healthy_cluster
    sha = {name: center_sha(cluster_center, name) for name in SCRIPTS}
    await create(client, budget_id, 10_000, sub_buckets=8, min_slice=20, max_slice=200)
    assert (await deduct(client, budget_id, f"{budget_id}-warm", 5)).code == OK
    assert cached(cluster, sha["deduct"]) == [1, 1, 1]

    for node in cluster.nodes:
        assert node.command("SCRIPT", "FLUSH") == b"OK"
    assert all(cached(cluster, sha[name]) == [0, 0, 0] for name in SCRIPTS)
    noscript_before = sum(
        stat(info_section(n, "errorstats"), "errorstat_NOSCRIPT", "count") for n in cluster.nodes
    )

    # A burst, so that many calls meet NOSCRIPT at once, on every shard, mid-transfer too.
    answers = await asyncio.gather(*(deduct(client, budget_id, f"{budget_id}-{i}", 7) for i in range(60)))
    assert [a.code for a in answers] == [OK] * 60
    back = await refund(client, budget_id, f"{budget_id}-r", f"{budget_id}-0", 3)
    assert back.code == OK

    noscript_after = sum(
        stat(info_section(n, "errorstats"), "errorstat_NOSCRIPT", "count") for n in cluster.nodes
    )
    assert noscript_after > noscript_before, "the calls never met NOSCRIPT: the flush was not exercised"
    # Reloaded on every primary, not only where NOSCRIPT was met.
    for name in SCRIPTS:
        assert cached(cluster, sha[name]) == [1, 1, 1], name
    b = await get(client, budget_id)
    assert b.consumed == 5 + 60 * 7 - 3
    await assert_balanced(client, budget_id)
