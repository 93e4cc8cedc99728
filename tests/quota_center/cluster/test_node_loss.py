"""(c) One master of the cluster dies and comes back empty in the middle of a workload: the part of
the budget it held is lost, the center rebuilds the budget from the ledger into a new generation,
nothing is ever overspent and the audit balances. Also: a stalled shard under a burst."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import grpc

from devstack import RedisCluster
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import EXISTS, INSUFFICIENT, OK, assert_balanced, create, deduct, get, refund
from tests.helpers.center import CenterThread, Client
from tests.helpers.recovery import settle
from tests.helpers.shards import bucket_keys, hget_int, owner, wait_cluster_ok
from tests.quota_center.cluster.test_scripts import cached, center_sha

SUB_BUCKETS = 8
UNKNOWN = pb.RESULT_CODE_UNKNOWN_REQUEST


class Workload:
    """Workers deducting (and now and then returning part of a deduction) until told to stop."""

    def __init__(self, client: Client, budget_id: str, seed: int) -> None:
        self.client = client
        self.budget_id = budget_id
        self.rng = random.Random(seed)
        self.deducted = 0
        self.returned = 0
        self.errors: Counter[grpc.StatusCode] = Counter()
        self.codes: Counter[int] = Counter()
        self.return_codes: Counter[int] = Counter()
        self.stop = asyncio.Event()

    async def worker(self, name: str, returns: bool) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            rid = f"{self.budget_id}-{name}-{i}"
            amount = self.rng.randint(1, 40)
            try:
                r = await deduct(self.client, self.budget_id, rid, amount)
                self.codes[r.code] += 1
                if r.code not in (OK, EXISTS):  # EXISTS: a retried call found its own first effect
                    continue
                self.deducted += r.amount
                if returns and i % 4 == 0:
                    back = await refund(self.client, self.budget_id, f"{rid}-ret", rid, 1 + amount // 2)
                    self.return_codes[back.code] += 1
                    if back.code in (OK, EXISTS):
                        self.returned += 1 + amount // 2
            except grpc.aio.AioRpcError as exc:
                self.errors[exc.code()] += 1  # the moment the node was down

    def start(self, workers: int, returns: bool) -> asyncio.Future[list[None]]:
        self.stop.clear()
        return asyncio.gather(*(self.worker(f"{returns:d}{w}", returns) for w in range(workers)))


async def test_a_master_restarted_empty_mid_workload(
    healthy_cluster: RedisCluster, cluster_center: CenterThread, client: Client, budget_id: str
) -> None:
    cluster = healthy_cluster
    total = 200_000
    await create(client, budget_id, total, sub_buckets=SUB_BUCKETS, min_slice=50, max_slice=1_000)
    buckets = bucket_keys(budget_id, SUB_BUCKETS)
    placement = {h: owner(cluster, k) for h, k in buckets.items()}
    # The victim: the master holding most of this budget's buckets (at least one sub-bucket).
    victim = Counter(n.port for n in placement.values()).most_common(1)[0][0]
    victim_node = next(n for n in cluster.nodes if n.port == victim)
    lost = [h for h, n in placement.items() if n.port == victim]
    assert any(h != "main" for h in lost), lost
    overspent: list[str] = []

    async def watch() -> None:
        while not work.stop.is_set():
            try:
                b = await get(client, budget_id)
            except grpc.aio.AioRpcError:
                continue
            if b.consumed + b.in_doubt > total:
                overspent.append(str(b))
            await asyncio.sleep(0.02)

    work = Workload(client, budget_id, seed=11)
    running = work.start(workers=6, returns=True)
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.4)
    served_before = work.deducted
    victim_node.kill()
    await asyncio.sleep(0.2)
    # While a master is down the center is not healthy (PING goes to every primary).
    assert await asyncio.to_thread(cluster_center.call, lambda: cluster_center.center.health.check()) is False
    await asyncio.to_thread(victim_node.restart)  # back on its port and cluster config, with no data
    await asyncio.to_thread(wait_cluster_ok, cluster)
    await asyncio.sleep(0.4)
    work.stop.set()
    await running
    await watcher
    assert await asyncio.to_thread(cluster_center.call, lambda: cluster_center.center.health.check()) is True

    # A second wave, deductions only, on the rebuilt budget.
    second = Workload(client, budget_id, seed=12)
    running = second.start(workers=6, returns=False)
    await asyncio.sleep(0.4)
    second.stop.set()
    await running

    assert served_before > 0, "nothing was spent before the loss"
    assert not overspent, overspent[:3]
    assert set(work.errors) <= {grpc.StatusCode.UNAVAILABLE}, work.errors
    assert not second.errors, second.errors
    assert set(work.codes) | set(second.codes) <= {OK, EXISTS}, (work.codes, second.codes)
    # A return may find its deduction's record gone with the node; it never returns more.
    assert set(work.return_codes) <= {OK, EXISTS, UNKNOWN}, work.return_codes
    # Every bucket of the budget is in a newer generation than the one it was created in.
    gens = {h: hget_int(cluster, k, "gen") for h, k in buckets.items()}
    assert all(g is not None and g >= 2 for g in gens.values()), gens
    assert len(set(gens.values())) == 1, gens
    # The restarted master had no scripts left; it has them again and serves its sub-buckets.
    assert cached(cluster, center_sha(cluster_center, "deduct"))[cluster.nodes.index(victim_node)] == 1
    victim_consumed = [hget_int(cluster, buckets[h], "consumed") or 0 for h in lost if h != "main"]
    assert sum(victim_consumed) > 0, "the restarted master's sub-buckets served nothing afterwards"

    # Let the settlement release what it can first: a release landing between the read below and
    # the last deductions would make "available" grow under the test.
    open_holders: list[int] = []
    while len(open_holders) < 5 or len(set(open_holders[-5:])) > 1:
        open_holders.append(await asyncio.to_thread(settle, cluster_center, budget_id))
        if open_holders[-1] == 0 or len(open_holders) > 50:
            break
        await asyncio.sleep(0.1)
    b = await get(client, budget_id)
    report = await assert_balanced(client, budget_id)
    # What the old generation's sub-buckets held is counted as spent (in doubt, or settled into
    # consumed), never issued again: everything acknowledged is covered.
    net_served = work.deducted - work.returned + second.deducted
    assert net_served <= b.consumed + b.in_doubt <= total
    assert b.available == total - b.consumed - b.in_doubt
    # The in-doubt amount is never issued again: spending all that is available works and stops there.
    if b.available:
        assert (await deduct(client, budget_id, f"{budget_id}-rest", b.available)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-over", 1)).code == INSUFFICIENT
    final = await assert_balanced(client, budget_id)
    assert final.consumed + final.in_doubt == total
    print(
        f"\nmaster :{victim} ({len(lost)} of {len(buckets)} buckets: {lost}) restarted empty;"
        f" errors {dict(work.errors)}; generation {gens['main']}; in doubt {report.in_doubt},"
        f" served {net_served} net"
    )


async def test_a_stalled_shard_under_a_burst_makes_requests_wait_not_fail(
    healthy_cluster: RedisCluster, client: Client, budget_id: str
) -> None:
    """A shard that stops answering for a moment (CLIENT PAUSE, like a slow fork or a network
    blip) while 500 requests arrive: the calls to it queue up on new connections and are all
    served. redis-py's cluster default of 100 connections per node would fail the 101st at
    once (MaxConnectionsError: UNAVAILABLE) instead of waiting."""
    cluster = healthy_cluster
    await create(client, budget_id, 10**9, sub_buckets=SUB_BUCKETS, min_slice=10_000, max_slice=100_000)
    for i in range(SUB_BUCKETS * 4):  # fill every sub-bucket, connect to every node
        assert (await deduct(client, budget_id, f"{budget_id}-warm-{i}", 1)).code == OK
    node = owner(cluster, bucket_keys(budget_id, SUB_BUCKETS)["sub:0"])

    async def pause() -> None:
        await asyncio.sleep(0.02)  # the burst is under way
        await asyncio.to_thread(node.command, "CLIENT", "PAUSE", "500", "ALL")

    burst = asyncio.gather(
        *(deduct(client, budget_id, f"{budget_id}-{i}", 1) for i in range(500)), return_exceptions=True
    )
    answers, _ = await asyncio.gather(burst, pause())
    failures = [a for a in answers if isinstance(a, BaseException)]
    assert not failures, f"{len(failures)} failed, e.g. {failures[0]!r}"
    assert all(a.code == OK for a in answers if not isinstance(a, BaseException))
    assert (await get(client, budget_id)).consumed == SUB_BUCKETS * 4 + 500
