"""Numbers of the end game, printed for the record (run with -s): ledger rows per thousand
deductions in normal and in central mode, and merge latency. Asserts the counts, not the times."""

from __future__ import annotations

import asyncio

import asyncpg

from quota_center.metrics import MERGE_SECONDS
from quota_center.spending.placement import sub_bucket_for
from tests.helpers.calls import OK, assert_balanced, create, deduct
from tests.helpers.center import Client


async def _rows(database_url: str, budget_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger WHERE budget_id = $1", budget_id))
    finally:
        await conn.close()


async def _thousand(client: Client, budget_id: str, amount: int) -> int:
    ok = 0
    for batch in range(10):
        results = await asyncio.gather(
            *(deduct(client, budget_id, f"{budget_id}-{batch}-{i}", amount) for i in range(100))
        )
        ok += sum(r.code == OK for r in results)
    return ok


def _merge_stats() -> tuple[float, float]:
    samples = {s.name: s.value for m in MERGE_SECONDS.collect() for s in m.samples if not s.labels.get("le")}
    return samples["quota_merge_seconds_count"], samples["quota_merge_seconds_sum"]


async def test_ledger_rows_per_thousand_deductions_and_merge_latency(
    client: Client, budget_id: str, database_url: str
) -> None:
    normal, central = f"{budget_id}-n", f"{budget_id}-c"
    await create(client, normal, 10_000_000, sub_buckets=8)
    await create(client, central, 10_000_000, sub_buckets=8, central_threshold=10_000_001)
    rows = {}
    for name in (normal, central):
        before = await _rows(database_url, name)
        assert await _thousand(client, name, 10) == 1000
        rows[name] = await _rows(database_url, name) - before
        await assert_balanced(client, name)
    assert rows[central] <= 2  # everything into the pool once (docs/center.md#end-game)
    assert rows[normal] <= 50

    # Merge latency: budgets whose remainder is spread over 8 sub-buckets (one small deduction
    # lands on each and fills it), then one request bigger than any fragment and than main.
    count0, sum0 = _merge_stats()
    for j in range(20):
        frag = f"{budget_id}-f{j}"
        # Thresholds of 1: every sub-bucket gets a full slice (NORMAL mode), so the rest is in
        # fragments wherever the big request lands, and it needs a merge.
        await create(
            client,
            frag,
            8_000,
            sub_buckets=8,
            min_slice=1,
            max_slice=1_000,
            scarcity_threshold=1,
            central_threshold=1,
        )
        for k in range(8):
            assert (await deduct(client, frag, _landing_on(frag, k), 1)).code == OK
        big = await deduct(client, frag, f"{frag}-big", 7_992)
        assert (big.code, big.amount) == (OK, 7_992)  # exactly the rest: the last unit issued
        await assert_balanced(client, frag)
    count1, sum1 = _merge_stats()
    merges = count1 - count0
    assert merges >= 20
    print(
        f"\nledger rows per 1000 deductions: normal {rows[normal]}, central {rows[central]};"
        f" merges {merges:.0f}, mean merge latency {1000 * (sum1 - sum0) / merges:.2f} ms (8 sub-buckets)"
    )


def _landing_on(budget_id: str, index: int) -> str:
    """A request id of ``budget_id`` that sub-bucket ``index`` of 8 serves."""
    i = 0
    while sub_bucket_for(f"{budget_id}-p{i}", 8) != index:
        i += 1
    return f"{budget_id}-p{i}"
