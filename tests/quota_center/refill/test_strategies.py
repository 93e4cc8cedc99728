"""The strategies a budget's policy selects: static (equal shares up front, no refill, no merge)
and central (every deduction decided at main), next to the default progressive one."""

from __future__ import annotations

import asyncpg

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import INSUFFICIENT, OK, assert_balanced, deduct, get
from tests.helpers.center import Client


async def _create(client: Client, budget_id: str, total: int, strategy: int, sub_buckets: int) -> None:
    r = await client.admin.CreateBudget(
        apb.CreateBudgetRequest(
            budget_id=budget_id,
            unit="u",
            total=total,
            policy=apb.SlicePolicy(strategy=strategy, sub_buckets=sub_buckets),
        )
    )
    assert r.code == OK, r.message


def _ids(budget_id: str, index: int, n: int, subs: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        rid = f"{budget_id}-{i}"
        if sub_bucket_for(rid, subs) == index:
            out.append(rid)
        i += 1
    return out


async def test_static_gives_each_sub_bucket_one_share_and_never_merges(
    client: Client, budget_id: str
) -> None:
    await _create(client, budget_id, 1_000, pb.STRATEGY_STATIC, 4)
    a, b = _ids(budget_id, 0, 3, 4), _ids(budget_id, 1, 1, 4)
    assert (await deduct(client, budget_id, a[0], 200)).code == OK  # sub-bucket 0 gets its 250
    # 60 more would exceed its share: refused although the budget has 800 left (static's price).
    refused = await deduct(client, budget_id, a[1], 60)
    assert refused.code == INSUFFICIENT
    assert "static" in refused.message
    assert (await deduct(client, budget_id, a[2], 50)).code == OK
    assert (await deduct(client, budget_id, b[0], 250)).code == OK  # sub-bucket 1: its own share
    b2 = await get(client, budget_id)
    assert (b2.consumed, b2.available) == (500, 500)
    assert b2.held == 0
    report = await assert_balanced(client, budget_id)
    assert report.main == 500  # the shares of sub-buckets 2 and 3, never asked for yet


async def test_central_serves_every_deduction_from_one_pool(
    client: Client, budget_id: str, database_url: str
) -> None:
    """Everything is merged into the pool (sub-bucket 0) once, one ledger row; every deduction,
    whichever sub-bucket it hashes to, is then served there (docs/center.md#end-game)."""
    await _create(client, budget_id, 10_000, pb.STRATEGY_CENTRAL, 4)
    for i in range(20):
        assert (await deduct(client, budget_id, f"{budget_id}-{i}", 7)).code == OK
    b = await get(client, budget_id)
    assert b.mode == pb.MODE_CENTRAL
    assert b.consumed == 140
    conn = await asyncpg.connect(database_url)
    try:
        grants = await conn.fetchval(
            "SELECT count(*) FROM ledger WHERE budget_id = $1 AND from_holder = 'main'", budget_id
        )
    finally:
        await conn.close()
    assert grants == 1
    report = await assert_balanced(client, budget_id)
    assert {h.holder: h.balance for h in report.holders if h.balance} == {"sub:0": 10_000 - 140}
