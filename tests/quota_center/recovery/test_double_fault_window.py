"""The double-fault window, measured: a deduction is acknowledged before its spend-log entry is
written (write-behind, QUOTA_CENTER_WRITEBEHIND_INTERVAL_MS); a center killed inside that window
and then a Redis loss forget it, and its retry is served again. The test prints how long the
window is (acknowledgement to the entry's write, p50/p99/max) and checks every entry lands."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg

from tests.helpers.calls import OK, create, deduct
from tests.helpers.center import Client


async def test_the_window_between_an_answer_and_its_spend_log_entry(
    client: Client, budget_id: str, database_url: str
) -> None:
    await create(client, budget_id, 1_000_000, sub_buckets=4)
    acked: dict[str, float] = {}  # request id -> unix seconds of the answer

    async def one(i: int) -> None:
        rid = f"{budget_id}-{i}"
        assert (await deduct(client, budget_id, rid, 1)).code == OK
        acked[rid] = time.time()

    for start in range(0, 400, 40):  # 40 at a time, as a busy center serves them
        await asyncio.gather(*(one(i) for i in range(start, start + 40)))
    conn = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = []
        for _ in range(100):
            rows = await conn.fetch(
                "SELECT request_id, logged_at FROM spend_log WHERE request_id = ANY($1::text[])", list(acked)
            )
            if len(rows) == len(acked):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert len(rows) == len(acked), "every served deduction reaches the spend log"
    lags = sorted(
        max(
            0.0,
            (
                r["logged_at"].astimezone(UTC) - datetime.fromtimestamp(acked[r["request_id"]], UTC)
            ).total_seconds(),
        )
        * 1000
        for r in rows
    )
    p50, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1]
    print(
        f"\ndouble-fault window (answer to its spend-log write) over {len(lags)} deductions:"
        f" p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {lags[-1]:.0f} ms"
    )
