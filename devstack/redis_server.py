"""Redis on 127.0.0.1: a throwaway server (empty after a restart), a kept one, or a Redis Cluster.

A throwaway server lives in its own temp dir on a free port, keeps its log there (quoted in
start-up errors) and is stopped by its owner, or at interpreter exit when that never happened.
A kept server (``directory=``, ``durable=True``, then ``detach()``) is the run script's: its
data and pid file stay in that directory and it outlives the command that started it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from pathlib import Path

from .binaries import redis_binary
from .cleanup import track, untrack
from .errors import StackError
from .ports import LOOPBACK, free_port
from .process import ServerProcess, remove_tree, run_checked
from .resp import RedisReplyError, Reply, info_fields, redis_command
from .servers import DirServer, Server


class RedisServer(DirServer):
    """A redis-server; by default it keeps nothing on disk, so after `restart()` it comes back empty.

    ``directory``: its data dir, created when missing and kept at stop (default: a temp dir,
    removed at stop). ``durable``: an append-only file, so data survives a restart. ``log_path``:
    where its output goes (default ``redis.log`` in its directory).
    """

    host = LOOPBACK
    program = "redis"

    def __init__(
        self,
        *,
        port: int | None = None,
        cluster: bool = False,
        extra_args: Sequence[str] = (),
        directory: Path | None = None,
        log_path: Path | None = None,
        durable: bool = False,
        startup_timeout: float = 20.0,
    ) -> None:
        super().__init__(port=port, directory=directory, log_path=log_path)
        # Redis's default bus port is port + 10000, which may be taken or past 65535: pick one too.
        self.cluster_port = free_port() if cluster else None
        self._extra_args = list(extra_args)
        self._durable = durable
        self._startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self, *args: str | bytes | int) -> Reply:
        """Run one Redis command on this server (a probe, not a client for the code under test)."""
        return redis_command(self.port, *args, host=self.host)

    def restart(self) -> None:
        """Stop the server if running and start it again on the same port (empty unless durable)."""
        if self._dir is None:
            self.start()
            return
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=10)
        if not self._durable:
            # Nothing is saved with --save "" and --appendonly no; removing files makes "empty" certain.
            for dump in self._dir.glob("*.rdb"):
                dump.unlink()
            remove_tree(self._dir / "appendonlydir")
        self._launch(None)

    def _new_ports(self) -> None:
        super()._new_ports()
        self.cluster_port = free_port() if self.cluster_port is not None else None

    def _launch(self, user: str | None) -> None:
        directory = self.directory
        argv = [
            redis_binary("redis-server"),
            *("--port", str(self.port), "--bind", self.host, "--dir", str(directory)),
            *("--save", "", "--appendonly", "yes" if self._durable else "no"),
            *("--daemonize", "no", "--logfile", "", "--pidfile", str(directory / "redis.pid")),
        ]
        if self.cluster_port is not None:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-port", str(self.cluster_port), "--cluster-node-timeout", "5000"]
        argv += self._extra_args
        self._proc = ServerProcess(argv, log_path=self.log_path, cwd=directory)
        proc = self._proc
        proc.wait_until(
            lambda: _is_redis_process(self.port, proc.pid),
            what=f"redis-server on {self.host}:{self.port}",
            timeout=self._startup_timeout,
        )

    def __repr__(self) -> str:
        return f"RedisServer(url={self.url!r}, running={self.running})"


def _is_redis_process(port: int, pid: int) -> bool:
    # Matching the pid makes sure we talk to our server, not one that won the port race.
    try:
        info = redis_command(port, "INFO", "server", timeout=1.0)
        pong = redis_command(port, "PING", timeout=1.0)
    except (OSError, RedisReplyError):
        return False
    return isinstance(info, bytes) and info_fields(info).get("process_id") == str(pid) and pong == b"PONG"


class RedisCluster(Server):
    """A Redis Cluster of masters without replicas, all 16384 slots assigned."""

    def __init__(self, masters: int = 3, *, startup_timeout: float = 60.0) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.nodes = [RedisServer(cluster=True) for _ in range(masters)]
        self._startup_timeout = startup_timeout
        self._formed = False

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """One node's URL: a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def running(self) -> bool:
        return self._formed

    def _start(self) -> None:
        track(self)
        for node in self.nodes:
            node.start()
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        create = [redis_binary("redis-cli"), "--cluster", "create", *addresses]
        run_checked(
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            what="redis-cli --cluster create",
            timeout=self._startup_timeout,
        )
        self._wait_ok()
        self._formed = True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self._formed = False
        untrack(self)

    def cluster_info(self) -> list[dict[str, str]]:
        """CLUSTER INFO of every node, in node order."""
        infos = []
        for node in self.nodes:
            reply = node.command("CLUSTER", "INFO")
            infos.append(info_fields(reply) if isinstance(reply, bytes) else {})
        return infos

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        expected = {"cluster_state": "ok", "cluster_slots_assigned": "16384"}
        expected["cluster_known_nodes"] = str(len(self.nodes))
        while True:
            infos = self.cluster_info()
            if all(all(info.get(k) == v for k, v in expected.items()) for info in infos):
                return
            if time.monotonic() > deadline:
                states = (f"{n.port}: {_pick(i, expected)}" for n, i in zip(self.nodes, infos, strict=True))
                raise StackError(f"Redis cluster not ok after {self._startup_timeout}s: " + "; ".join(states))
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"RedisCluster(urls={self.urls!r}, formed={self._formed})"


def _pick(info: dict[str, str], keys: dict[str, str]) -> dict[str, str | None]:
    return {key: info.get(key) for key in keys}
