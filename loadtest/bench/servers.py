"""The servers the benchmark measures, all throwaway on loopback: devstack's stack (Redis, PostgreSQL,
the center, three region agents: the paths measure the first, the flash sale all three) plus the
two echo servers (``python -m loadtest.bench.echo``).

Every server runs on the event loop asked for, logs at WARNING (a log line per call would be
measured too) and logs to the stack's temp dir, kept with ``keep``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from devstack import GrpcProcess, Stack, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_REGION = "bench"
AGENT_REGIONS = (AGENT_REGION, "bench-us", "bench-ap")


class Servers:
    """The center, the agent and the echo servers, with the targets the measurements call."""

    def __init__(
        self, log: Callable[[str], None], *, keep: bool = False, event_loop: str = "asyncio"
    ) -> None:
        self.event_loop = event_loop
        self.stack = Stack(
            regions=AGENT_REGIONS,
            progress=log,
            keep=keep,
            # The background fill every 100 ms keeps the sub-buckets the center serves from full.
            center_settings={"FILL_INTERVAL_MS": "100", "LOG_LEVEL": "WARNING", "EVENT_LOOP": event_loop},
            agent_settings={"LOG_LEVEL": "WARNING", "EVENT_LOOP": event_loop},
            # The clients' connections through the center's pool, with room to spare.
            postgres_settings={"max_connections": "200"},
        )
        self.echo = self._echo("echo", None)
        self.redis_echo: GrpcProcess | None = None

    @property
    def dir(self) -> Path:
        return self.stack.dir

    @property
    def center_target(self) -> str:
        return self.stack.center

    @property
    def agent_target(self) -> str:
        return self.stack.agents[0]

    @property
    def agent_targets(self) -> list[str]:
        return list(self.stack.agents)

    @property
    def agent_metrics_url(self) -> str:
        return self.stack.agent_metrics[0]

    @property
    def agent_metrics_urls(self) -> list[str]:
        return list(self.stack.agent_metrics)

    @property
    def center_metrics_url(self) -> str:
        return self.stack.center_metrics

    @property
    def echo_target(self) -> str:
        return self.echo.target

    @property
    def redis_echo_target(self) -> str:
        if self.redis_echo is None:
            raise RuntimeError("the servers are not started")
        return self.redis_echo.target

    def pid(self, name: str) -> int:
        """``center``, ``agent``, ``echo`` or ``echo-evalsha``."""
        return self.stack.pid(f"agent-{AGENT_REGION}-1" if name == "agent" else name)

    def start(self) -> None:
        try:
            self.stack.start()
            self.stack.add("echo", self.echo)
            self.redis_echo = self._echo("echo-evalsha", self.stack.redis_url)
            self.stack.add("echo-evalsha", self.redis_echo)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.stack.stop()

    def _echo(self, name: str, redis_url: str | None) -> GrpcProcess:
        port = free_port()
        argv = ["-m", "loadtest.bench.echo", "--port", str(port), "--event-loop", self.event_loop]
        if redis_url is not None:
            argv += ["--redis-url", redis_url]
        # loadtest is not installed: the echo server finds it from the repository root.
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return GrpcProcess(
            name,
            [sys.executable, *argv],
            port=port,
            log_path=self.stack.log_dir / f"{name}.log",
            env={"PYTHONPATH": pythonpath},
            cwd=REPO_ROOT,
        )
