"""Request ids remembered for the retention while Redis keeps them only for a short window
(docs/center.md#request-ids): a retry after the window is answered from the spend log with its
original answer, a return of an old deduction still refunds exactly what is left, and a retry
older than the retention (the center's clock moved past it) is a new request, as documented.
Real Redis (one server and a cluster), PostgreSQL and center; the window is 2 s here."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from quota.v1 import common_pb2 as pb
from quota_center.buckets import keys
from quota_center.buckets.seen import place
from quota_center.clock import DAY_S
from quota_center.recovery.spend_days import SpendDays
from quota_center.server import Center
from tests.helpers.calls import CONFLICT, EXISTS, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import CenterThread, Client, own_ledger_center
from tests.helpers.shards import cluster_url

WINDOW_S = 2
EXCEEDS = pb.RESULT_CODE_EXCEEDS_DEDUCTED


BOTH = pytest.mark.parametrize("window_center", ["one server", "cluster"], indirect=True)


@pytest.fixture(scope="module")
def window_center(
    request: pytest.FixtureRequest, redis_url: str, database_url: str
) -> Iterator[CenterThread]:
    """A center whose Redis forgets a request after 2 s (the spend log must be written before:
    a center that cannot write it stops spending after 0.5 s, and is taken for gone after 1.5),
    on one Redis server (the filters tested and added in deduct.lua) and on a Redis Cluster
    (tested and added apart, seen.lua)."""
    kind = getattr(request, "param", "one server")
    url = redis_url if kind == "one server" else cluster_url(request.getfixturevalue("redis_cluster"))
    with own_ledger_center(
        url,
        database_url,
        "qc_window",
        request_window_s=WINDOW_S,
        writebehind_lease_ms=500,
        instance_dead_after_ms=1_500,
    ) as running:
        yield running


@pytest.fixture
def serving(window_center: CenterThread) -> CenterThread:
    return window_center


def _center(running: CenterThread) -> Center:
    assert running.center is not None
    return running.center


async def _forgotten(running: CenterThread, *request_ids: str) -> None:
    """Wait until Redis holds no claim of these ids any more (the window passed)."""
    redis = _center(running).redis
    deadline = time.monotonic() + WINDOW_S + 5
    for claim in [keys.claim_key(i) for i in request_ids]:
        while running.call(lambda c=claim: redis.exists(c)):
            assert time.monotonic() < deadline, "claims outlived the request window"
            await asyncio.sleep(0.1)


@BOTH
async def test_a_retry_after_the_window_gets_its_original_answer_from_the_spend_log(
    client: Client, serving: CenterThread
) -> None:
    b = f"win-{secrets.token_hex(4)}"
    await create(client, b, 1_000, sub_buckets=3)
    d1, d2 = f"{b}-d1", f"{b}-d2"
    assert (await deduct(client, b, d1, 70)).code == OK
    assert (await deduct(client, b, d2, 30)).code == OK
    r1 = f"{b}-r1"
    assert (await refund(client, b, r1, d1, 20)).code == OK  # 50 of d1 left to return
    await _forgotten(serving, d1, d2, r1)

    again = await deduct(client, b, d1, 70)
    assert (again.code, again.amount) == (EXISTS, 70), again
    assert (await deduct(client, b, d1, 71)).code == CONFLICT  # the id did something else
    await create(client, f"{b}-x", 100, sub_buckets=1)
    assert (await deduct(client, f"{b}-x", d2, 30)).code == CONFLICT  # ids are global across budgets
    back = await refund(client, b, r1, d1, 20)
    assert (back.code, back.amount) == (EXISTS, 20), back
    assert (await get(client, b)).consumed == 80, "a retry after the window was applied again"

    # A new return of the old deduction: its record is rebuilt from the log, with what the log
    # says was returned already, at the sub-bucket that served it.
    over = await refund(client, b, f"{b}-r2", d1, 51)
    assert (over.code, over.refundable) == (EXCEEDS, 50), over
    assert (await refund(client, b, f"{b}-r3", d1, 50)).code == OK
    assert (await refund(client, b, f"{b}-r4", d1, 1)).code == EXCEEDS
    assert (await refund(client, b, f"{b}-r5", d2, 30)).code == OK
    # New ids are served as new, right after the old ones were recalled.
    for n in range(20):
        assert (await deduct(client, b, f"{b}-new{n}", 1)).code == OK
    final = await get(client, b)
    assert final.consumed == 20
    await assert_balanced(client, b)


async def test_returns_retried_after_the_window_apply_once(client: Client, serving: CenterThread) -> None:
    """A return's record and claim expire too: retried after the window (when a later return
    keeps its deduction's record alive), it is found in the log, not refunded twice."""
    b = f"win-{secrets.token_hex(4)}"
    await create(client, b, 500, sub_buckets=2)
    d = f"{b}-d"
    assert (await deduct(client, b, d, 100)).code == OK
    assert (await refund(client, b, f"{b}-r1", d, 10)).code == OK
    await _forgotten(serving, f"{b}-r1")
    assert (await refund(client, b, f"{b}-r2", d, 10)).code == OK  # recreates d's record
    again = await refund(client, b, f"{b}-r1", d, 10)
    assert (again.code, again.amount) == (EXISTS, 10), again
    assert (await get(client, b)).consumed == 80
    await assert_balanced(client, b)


@BOTH
async def test_concurrent_copies_of_an_old_request_apply_nothing(
    client: Client, serving: CenterThread
) -> None:
    """Copies of an old deduction and of an old return, in waves (an answer found in the log binds
    nothing that would let a later copy past the lookup)."""
    b = f"win-{secrets.token_hex(4)}"
    await create(client, b, 100, sub_buckets=2)
    d, r = f"{b}-d", f"{b}-r"
    assert (await deduct(client, b, d, 9)).code == OK
    assert (await refund(client, b, r, d, 4)).code == OK
    await _forgotten(serving, d, r)
    for _ in range(3):
        answers = await asyncio.gather(
            *(deduct(client, b, d, 9) for _ in range(6)), *(refund(client, b, r, d, 4) for _ in range(6))
        )
        assert {(a.code, a.amount) for a in answers} == {(EXISTS, 9), (EXISTS, 4)}, answers
        await asyncio.sleep(0.05)
    assert (await get(client, b)).consumed == 5
    await assert_balanced(client, b)


async def test_a_retry_older_than_the_retention_is_new_and_old_days_leave_the_spend_log(
    client: Client, serving: CenterThread
) -> None:
    center = _center(serving)
    b = f"win-{secrets.token_hex(4)}"
    await create(client, b, 1_000, sub_buckets=1)
    d = f"{b}-d"
    assert (await deduct(client, b, d, 40)).code == OK
    assert (await refund(client, b, f"{b}-r", d, 15)).code == OK
    await _forgotten(serving, d, f"{b}-r")
    days = SpendDays(center.ledger, center.settings.retention_s)
    before = serving.call(lambda: center.ledger.logged_consumption(b, 1, "sub:0"))
    assert before == 25
    served_on = center.ledger.today()
    assert served_on in serving.call(center.ledger.spend_days)

    # Six days on, still within the retention: the log answers.
    center.clock.offset_s = 6 * DAY_S
    try:
        assert serving.call(days.tend) == 0
        assert (await deduct(client, b, d, 40)).code == EXISTS
        # Past the retention, and a day for the last day's partition: the day is dropped, what it
        # consumed stays counted for a settlement, and the id is new (docs/center.md#request-ids).
        center.clock.offset_s = center.settings.retention_s + DAY_S + 60
        assert serving.call(days.tend) >= 1
        kept = serving.call(center.ledger.spend_days)
        assert served_on not in kept
        assert min(kept) == served_on + timedelta(days=1)  # the days kept: the retention and one more
        assert serving.call(lambda: center.ledger.logged_consumption(b, 1, "sub:0")) == before
        again = await deduct(client, b, d, 40)
        assert (again.code, again.amount) == (OK, 40), again
        assert (await get(client, b)).consumed == 65
        await assert_balanced(client, b)
    finally:
        center.clock.offset_s = 0


@BOTH
async def test_an_old_retry_is_recognised_after_redis_lost_the_filters(
    client: Client, serving: CenterThread
) -> None:
    """The filter shards holding old ids are deleted (a flush, a node restarted empty): their ids
    are looked up in the spend log until new filters hold the whole retention, so the retries
    still get their answers, and new ids are still served."""
    center = _center(serving)
    seen = center.buckets.seen
    assert seen is not None
    b = f"win-{secrets.token_hex(4)}"
    await create(client, b, 1_000, sub_buckets=2)
    old = [f"{b}-d{n}" for n in range(12)]
    for n, request_id in enumerate(old):
        assert (await deduct(client, b, request_id, n + 1)).code == OK
    await _forgotten(serving, *old)
    for shard in {place(i).shard for i in old}:
        names = _shard_keys(seen.prefix(shard), center.clock.day())
        assert serving.call(lambda n=names: center.redis.exists(*n)), "the filters of a shard that served ids"
        serving.call(lambda n=names: center.redis.delete(*n))
    for n, request_id in enumerate(old):
        again = await deduct(client, b, request_id, n + 1)
        assert (again.code, again.amount) == (EXISTS, n + 1), again
    for n in range(12):
        assert (await deduct(client, b, f"{b}-new{n}", 1)).code == OK
    assert (await get(client, b)).consumed == sum(range(1, 13)) + 12
    await assert_balanced(client, b)


def _shard_keys(prefix: str, day: int) -> list[str]:
    """The keys of one filter shard today (seen_lib.lua): its mark, its day's count and bitmaps."""
    return [f"{prefix}:since", f"{prefix}:{day}", *(f"{prefix}:{day}:{j}" for j in range(8))]
