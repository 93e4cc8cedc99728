"""A DeductBatch of the most items allowed, most of them on sub-buckets short of them, holds a
bounded number of Redis connections and answers within the caller's deadline with a result per
item; what it did not start is done, once, by the same batch sent again."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from redis import Redis

from devstack.redis_server import RedisServer
from quota.v1 import common_pb2 as pb
from quota_center.buckets.client import DEFAULT_MAX_CONNECTIONS
from quota_rules.limits import MAX_BATCH
from tests.helpers.calls import EXISTS, OK, assert_balanced, create, get
from tests.helpers.center import CenterThread, Client, center_settings

UNSETTLED = pb.RESULT_CODE_UNSETTLED


class ClientCount:
    """The most clients Redis had connected at once while it ran, polled every 20 ms."""

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)
        self.most = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.done.wait(0.02):
            clients = self.redis.info("clients")["connected_clients"]
            self.most = max(self.most, int(clients))

    def __enter__(self) -> ClientCount:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.redis.close()


@pytest.fixture
def own_center(fresh_redis: RedisServer, database_url: str) -> Iterator[CenterThread]:
    with CenterThread(center_settings(fresh_redis.url, database_url)) as center:
        yield center


async def test_ten_thousand_items_hold_few_connections_and_answer_in_time(
    own_center: CenterThread, fresh_redis: RedisServer, budget_id: str
) -> None:
    client = Client(own_center.target)
    total = 100 * MAX_BATCH
    # Small slices: most items find their sub-bucket short and go on one by one.
    await create(client, budget_id, total, sub_buckets=8, min_slice=1, max_slice=20)
    items = [
        pb.DeductRequest(budget_id=budget_id, request_id=f"{budget_id}-{i}", amount=7)
        for i in range(MAX_BATCH)
    ]
    request = pb.DeductBatchRequest(items=items)
    try:
        with ClientCount(fresh_redis.url) as count:
            first = await client.quota.DeductBatch(request, timeout=3.0)
        codes = [r.code for r in first.results]
        assert len(codes) == MAX_BATCH
        assert set(codes) <= {OK, UNSETTLED}, set(codes)
        settled = codes.count(OK)
        print(f"\n{settled} of {MAX_BATCH} settled within 3 s; at most {count.most} Redis clients")
        assert count.most <= DEFAULT_MAX_CONNECTIONS + 10  # the center's pool, and this test's own

        b = await get(client, budget_id)
        assert b.consumed == 7 * settled  # nothing unsettled was done

        again = await client.quota.DeductBatch(request, timeout=120.0)
        assert [r.code for r in again.results] == [EXISTS if c == OK else OK for c in codes]
        assert (await get(client, budget_id)).consumed == 7 * MAX_BATCH
        await assert_balanced(client, budget_id)
    finally:
        await client.close()
