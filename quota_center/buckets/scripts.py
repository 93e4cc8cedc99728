"""Lua scripts called by SHA, loaded again when Redis answers NOSCRIPT (after a restart or flush)."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster

SCRIPT_NAMES = (
    "deduct",
    "refund",
    "transfer_take",
    "transfer_credit",
    "transfer_restore",
    "bucket_init",
    "set_state",
    "reserve",
    "confirm",
    "cancel",
    "expire",
    "agent_report",
    "agent_expire",
    "agent_restore",
    "agent_carry",
    "agent_drop",
    "pool_open",
    "sellout_read",
    "sellout_mark",
    "sellout_clear",
    "snapshot",
    "zrem_if",
    "read_buckets",
    "read_sets",
    "seen",
)
# Lua chunks prepended to a script (Redis has no include): the functions they define come first.
INCLUDES = {"deduct": ("seen_lib",), "seen": ("seen_lib",)}


class Scripts:
    """The center's Lua scripts, each run with EVALSHA and reloaded on NOSCRIPT."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._source: dict[str, str] = {}
        self._sha: dict[str, str] = {}
        folder = resources.files("quota_center.buckets") / "lua"
        for name in SCRIPT_NAMES:
            parts = [*INCLUDES.get(name, ()), name]
            text = "\n".join((folder / f"{part}.lua").read_text(encoding="utf-8") for part in parts)
            self._source[name] = text
            self._sha[name] = hashlib.sha1(text.encode("utf-8")).hexdigest()

    def sha(self, name: str) -> str:
        return self._sha[name]

    async def load(self, name: str) -> None:
        """Load script ``name`` (a Redis Cluster client loads it on every primary)."""
        await self._redis.script_load(self._source[name])

    async def run(self, name: str, keys: list[str], args: list[str | int]) -> Any:
        """Run script ``name``; a missing script is loaded once and the call repeated."""
        sha = self._sha[name]
        try:
            return await self._redis.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            # A Redis Cluster client sends SCRIPT LOAD to every primary.
            await self._redis.script_load(self._source[name])
            return await self._redis.evalsha(sha, len(keys), *keys, *args)
