"""Throwaway Redis and PostgreSQL servers on 127.0.0.1 for the tests.

Each server lives in its own temp dir on a free port, keeps its log there (quoted in start-up
errors) and is stopped by its fixture, or at interpreter exit when a teardown never ran.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from ._process import (
    LOOPBACK,
    HarnessError,
    ServerProcess,
    chown,
    free_port,
    log_contains,
    make_tempdir,
    remove_tree,
    run_checked,
    service_user,
    track,
    untrack,
)
from .binaries import postgres_binary, redis_binary
from .resp import RedisReplyError, Reply, info_fields, redis_command

_PORT_CLASH = "Address already in use"


class _Server:
    """Context-manager plumbing shared by the servers."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisServer(_Server):
    """A redis-server that keeps nothing on disk: after `restart()` it comes back empty."""

    host = LOOPBACK

    def __init__(
        self,
        *,
        port: int | None = None,
        cluster: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        # Redis's default bus port is port + 10000, which may be taken or past 65535: pick one too.
        self.cluster_port = free_port() if cluster else None
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._dir: Path | None = None
        self._proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise HarnessError("redis-server is not started")
        return self._proc.pid

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise HarnessError("redis-server is not started")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def command(self, *args: str | bytes | int) -> Reply:
        """Run one Redis command on this server (a probe, not a client for the code under test)."""
        return redis_command(self.port, *args, host=self.host)

    def start(self) -> Self:
        if self.running:
            return self
        attempts = 1 if self._port_fixed else 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
            except HarnessError:
                # Another process may have bound the port between free_port() and redis-server.
                if attempt == attempts or not log_contains(self.log_path, _PORT_CLASH):
                    self.stop()
                    raise
                self.port = free_port()
                self.cluster_port = free_port() if self.cluster_port is not None else None
            else:
                return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its temp dir."""
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=10)
            self._proc = None
        if self._dir is not None:
            remove_tree(self._dir)
            self._dir = None
        untrack(self)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; `restart()` brings it back."""
        if self._proc is not None:
            self._proc.kill()

    def restart(self) -> None:
        """Stop the server if running and start it again, empty, on the same port."""
        if self._dir is None:
            self.start()
            return
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=10)
        # Nothing is saved with --save "" and --appendonly no; removing files makes "empty" certain.
        for dump in self._dir.glob("*.rdb"):
            dump.unlink()
        remove_tree(self._dir / "appendonlydir")
        self._launch()

    def _launch(self) -> None:
        if self._dir is None:
            self._dir = make_tempdir("qc-redis-")
            track(self)
        argv = [
            redis_binary("redis-server"),
            *("--port", str(self.port), "--bind", self.host, "--dir", str(self._dir)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""),
        ]
        if self.cluster_port is not None:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-port", str(self.cluster_port), "--cluster-node-timeout", "5000"]
        argv += self._extra_args
        self._proc = ServerProcess(argv, log_path=self.log_path, cwd=self._dir)
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


class RedisCluster(_Server):
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

    def start(self) -> Self:
        if self._formed:
            return self
        track(self)
        try:
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
        except BaseException:
            self.stop()
            raise
        self._formed = True
        return self

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
                raise HarnessError(
                    f"Redis cluster not ok after {self._startup_timeout}s: " + "; ".join(states)
                )
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"RedisCluster(urls={self.urls!r}, formed={self._formed})"


def _pick(info: dict[str, str], keys: dict[str, str]) -> dict[str, str | None]:
    return {key: info.get(key) for key in keys}


class PostgresServer(_Server):
    """A PostgreSQL cluster in a temp dir, trust auth for user postgres, durability off for speed."""

    host = LOOPBACK

    def __init__(self, *, port: int | None = None, startup_timeout: float = 60.0) -> None:
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self._startup_timeout = startup_timeout
        self._dir: Path | None = None
        self._proc: ServerProcess | None = None

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise HarnessError("postgres is not started")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def start(self) -> Self:
        if self.running:
            return self
        user = service_user()
        try:
            self._init_cluster(user)
            attempts = 1 if self._port_fixed else 3
            for attempt in range(1, attempts + 1):
                try:
                    self._launch(user)
                except HarnessError:
                    if attempt == attempts or not log_contains(self.log_path, _PORT_CLASH):
                        raise
                    self.port = free_port()
                else:
                    return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, no checkpoint wait), then delete the temp dir."""
        if self._proc is not None:
            self._proc.stop(signal.SIGINT, timeout=30)
            self._proc = None
        if self._dir is not None:
            remove_tree(self._dir)
            self._dir = None
        untrack(self)

    def create_database(self, name: str) -> str:
        """Create database `name` and return its DSN."""
        return create_database(self.dsn, name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql; returns unaligned, tuples-only output."""
        return psql(self.dsn_for(database), sql)

    def _init_cluster(self, user: str | None) -> None:
        # The dir is handed to the postgres user when we are root: initdb/postgres refuse root.
        self._dir = make_tempdir("qc-pg-", owner=user)
        track(self)
        sockets = self._dir / "sock"
        sockets.mkdir(mode=0o700)
        if user is not None:
            chown(sockets, user)
        initdb = [postgres_binary("initdb"), "-D", str(self._dir / "data"), "-A", "trust", "-U", "postgres"]
        initdb += ["--no-sync", "-E", "UTF8", "--locale=C"]  # C locale: LANG may name one not installed
        run_checked(initdb, what="initdb", user=user, cwd=self._dir)

    def _launch(self, user: str | None) -> None:
        data = self.directory / "data"
        argv = [
            postgres_binary("postgres"),
            *("-D", str(data), "-p", str(self.port), "-k", str(self.directory / "sock")),
            *("-c", f"listen_addresses={self.host}", "-c", "fsync=off"),
            *("-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ]
        self._proc = ServerProcess(argv, log_path=self.log_path, cwd=self.directory, user=user)
        proc = self._proc
        proc.wait_until(
            lambda: _postmaster_ready(data, proc.pid),
            what=f"postgres on {self.host}:{self.port}",
            timeout=self._startup_timeout,
        )

    def __repr__(self) -> str:
        return f"PostgresServer(dsn={self.dsn!r}, running={self.running})"


def _postmaster_ready(data: Path, pid: int) -> bool:
    # postmaster.pid: line 1 is the pid, line 8 the status, "ready" once connections are accepted.
    # Checking our own pid file, not the port, cannot mistake another server for ours.
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def dsn_for_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database (credentials and query kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def psql(dsn: str, sql: str) -> str:
    """Run SQL with psql (no psqlrc, stop at the first error); returns unaligned tuples-only output."""
    argv = [postgres_binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql]
    return run_checked(argv, what="psql", timeout=60)


def create_database(server_dsn: str, name: str) -> str:
    """Create database `name` on the server of `server_dsn` and return its DSN."""
    _check_identifier(name)
    psql(server_dsn, f'CREATE DATABASE "{name}"')
    return dsn_for_database(server_dsn, name)


def drop_database(server_dsn: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever is still connected (PostgreSQL 13+)."""
    _check_identifier(name)
    psql(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_identifier(name: str) -> None:
    # The name is spliced into SQL; a plain identifier needs no escaping.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
