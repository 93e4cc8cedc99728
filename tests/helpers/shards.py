"""Ask the cluster itself where keys live: CLUSTER KEYSLOT and CLUSTER SLOTS, sent with the
devstack's own probe client (not the redis-py client under test)."""

from __future__ import annotations

import time

from devstack import RedisCluster, RedisServer, info_fields
from quota_center.buckets import keys
from quota_center.holders import MAIN, sub_holder


def cluster_url(cluster: RedisCluster) -> str:
    """The center's URL for ``cluster``: every node as a seed."""
    return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in cluster.nodes) + "/"


def keyslot(cluster: RedisCluster, key: str) -> int:
    reply = cluster.nodes[0].command("CLUSTER", "KEYSLOT", key)
    assert isinstance(reply, int)
    return reply


def owner(cluster: RedisCluster, key: str) -> RedisServer:
    """The master that serves ``key``, by the cluster's own slot map."""
    slot = keyslot(cluster, key)
    reply = cluster.nodes[0].command("CLUSTER", "SLOTS")
    assert isinstance(reply, list)
    for entry in reply:
        assert isinstance(entry, list)
        start, end, master = entry[0], entry[1], entry[2]
        assert isinstance(start, int)
        assert isinstance(end, int)
        assert isinstance(master, list)
        if start <= slot <= end:
            port = master[1]
            return next(n for n in cluster.nodes if n.port == port)
    raise AssertionError(f"slot {slot} of {key!r} has no owner")


def bucket_keys(budget_id: str, sub_buckets: int) -> dict[str, str]:
    """Holder name -> key of its hash: main and every sub-bucket."""
    holders = [MAIN, *(sub_holder(i) for i in range(sub_buckets))]
    return {h: keys.bucket_keys(budget_id, h).state for h in holders}


def hget_int(cluster: RedisCluster, key: str, field: str) -> int | None:
    """A hash field read straight from the node that owns the key."""
    value = owner(cluster, key).command("HGET", key, field)
    assert value is None or isinstance(value, bytes)
    return None if value is None else int(value)


def info_section(node: RedisServer, section: str) -> dict[str, str]:
    reply = node.command("INFO", section)
    assert isinstance(reply, bytes)
    return info_fields(reply)


def stat(fields: dict[str, str], name: str, item: str) -> int:
    """``calls`` of ``cmdstat_ping:calls=3,usec=...`` style INFO lines; 0 when absent."""
    for part in fields.get(name, "").split(","):
        key, _, value = part.partition("=")
        if key == item:
            return int(value)
    return 0


def wait_cluster_ok(cluster: RedisCluster, timeout: float = 20.0) -> None:
    """Until every node reports cluster_state:ok (a restarted master waits ~2 s before it does)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            states = [info.get("cluster_state") for info in cluster.cluster_info()]
        except OSError:
            states = []
        if states and all(s == "ok" for s in states):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster not ok after {timeout}s: {states}")
        time.sleep(0.05)
