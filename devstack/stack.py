"""A whole throwaway stack on 127.0.0.1: Redis, PostgreSQL, the center and region agents.

What the load tests and the benchmark run against. Every process logs to a file in
``log_dir`` (by default the stack's own temp dir); a start-up failure quotes the log's tail.
``stop()`` stops them newest first and removes the temp dir (``keep=True`` keeps it, logs
included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .cleanup import Stoppable
from .grpc_servers import AgentProcess, CenterProcess, GrpcProcess
from .postgres import PostgresServer
from .process import make_tempdir, remove_tree
from .redis_server import RedisServer
from .servers import ProcessServer, Server

REGIONS = ("eu", "us", "ap")


def _quiet(line: str) -> None:
    pass


class Stack(Server):
    """Redis, PostgreSQL, one center and an agent per region (id ``<region>-1``), all on loopback.

    ``center_settings`` / ``agent_settings`` are more settings of those processes, by their
    names without the prefix. ``postgres_settings`` are more ``-c`` server settings.
    ``progress`` is told each step as one line.
    """

    def __init__(
        self,
        *,
        regions: Sequence[str] = REGIONS,
        log_dir: Path | None = None,
        progress: Callable[[str], None] = _quiet,
        center_settings: Mapping[str, str] | None = None,
        agent_settings: Mapping[str, str] | None = None,
        postgres_settings: Mapping[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.regions = list(regions)
        self.progress = progress
        self.keep = keep
        self.dir = make_tempdir("qc-stack-")
        self.log_dir = log_dir or self.dir
        self._center_settings = dict(center_settings or {})
        self._agent_settings = dict(agent_settings or {})
        self._postgres_settings = dict(postgres_settings or {})
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.center_process: CenterProcess | None = None
        self.agent_processes: list[AgentProcess] = []
        self._started: list[tuple[str, Stoppable]] = []  # in start order; stopped in reverse
        self._stopped = False

    @property
    def center(self) -> str:
        """``127.0.0.1:PORT`` of the center."""
        return "" if self.center_process is None else self.center_process.target

    @property
    def center_metrics(self) -> str:
        return "" if self.center_process is None else self.center_process.metrics_url

    @property
    def agents(self) -> list[str]:
        """``127.0.0.1:PORT`` of each agent, in region order."""
        return [a.target for a in self.agent_processes]

    @property
    def agent_metrics(self) -> list[str]:
        return [a.metrics_url for a in self.agent_processes]

    @property
    def redis_url(self) -> str:
        return "" if self.redis is None else self.redis.url

    @property
    def database_url(self) -> str:
        return "" if self.postgres is None else self.postgres.dsn

    @property
    def running(self) -> bool:
        return bool(self._started) and not self._stopped

    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(log_path=self.log_dir / "redis.log")
        self.progress(f"starting redis-server on {self.redis.host}:{self.redis.port}")
        self._add("redis", self.redis.start())
        self.postgres = PostgresServer(
            log_path=self.log_dir / "postgres.log", settings=self._postgres_settings
        )
        self.progress(f"starting postgres on {self.postgres.host}:{self.postgres.port} (initdb first)")
        self._add("postgres", self.postgres.start())
        self.center_process = CenterProcess(
            self.redis.url,
            self.postgres.dsn,
            log_path=self.log_dir / "center.log",
            settings=self._center_settings,
        )
        self.progress(f"starting quota-center on {self.center_process.target}")
        self._add("center", self.center_process.start())
        for region in self.regions:
            agent_id = f"{region}-1"
            agent = AgentProcess(
                self.center,
                agent_id=agent_id,
                region=region,
                journal=self.dir / f"{agent_id}.journal",
                log_path=self.log_dir / f"agent-{agent_id}.log",
                settings=self._agent_settings,
            )
            self.progress(f"starting region-agent {agent_id} on {agent.target}")
            self._add(f"agent-{agent_id}", agent.start())
            self.agent_processes.append(agent)

    def add(self, name: str, server: GrpcProcess) -> GrpcProcess:
        """Start another server (the benchmark's echo servers) and stop it with the stack."""
        self.progress(f"starting {name} on {server.target}")
        self._add(name, server.start())
        return server

    def _add(self, name: str, server: Stoppable) -> None:
        self._started.append((name, server))

    def pid(self, name: str) -> int:
        """The pid of a started process by its name (``center``, ``agent-eu-1``, or as added)."""
        for started, server in self._started:
            if started == name and isinstance(server, ProcessServer):
                return server.pid
        raise KeyError(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for _, server in reversed(self._started):
            server.stop()
        self._started.clear()
        if self.keep:
            self.progress(f"logs kept in {self.log_dir}")
        else:
            remove_tree(self.dir)
