"""gRPC servers as processes: the center (``quota-center serve``), region agents (``region-agent
serve``) and any other command with a health service (the benchmark's echo servers).

They run as the commands a user runs, configured by environment variables, so what is started
is what ships; a server counts as up once its health service answers SERVING.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .binaries import project_command
from .cleanup import track, untrack
from .ports import LOOPBACK, free_port
from .process import ServerProcess
from .servers import ProcessServer


def serving(
    target: str,
    timeout: float = 1.0,
    credentials: grpc.ChannelCredentials | None = None,
    service: str = "",
) -> bool:
    """Whether the gRPC server at ``target`` answers its health check of ``service`` ("": ready;
    "liveness": alive) with SERVING (over TLS with ``credentials``)."""
    with (
        grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
    ) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class GrpcProcess(ProcessServer):
    """A command serving gRPC on 127.0.0.1:``port``, up once its health service says SERVING.

    ``log_path`` receives its stdout and stderr; ``env`` is laid over this process's environment;
    ``credentials`` are the health check's when the server speaks TLS; ``up_when`` the health
    service name that must say SERVING ("": ready; "liveness" for a server that cannot be
    ready yet, such as an agent whose center is not there). Stopping sends SIGTERM (the servers drain) and SIGKILLs what is still there after 15 s.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 60.0,
        credentials: grpc.ChannelCredentials | None = None,
        up_when: str = "",
    ) -> None:
        super().__init__()
        self.credentials = credentials
        self.up_when = up_when
        self.name = self.program = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.env = dict(env or {})
        self._cwd = cwd or log_path.parent
        self._startup_timeout = startup_timeout

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = ServerProcess(self.argv, log_path=self.log_path, cwd=self._cwd, env=self.env)
        track(self)
        self._proc.wait_until(
            lambda: serving(self.target, credentials=self.credentials, service=self.up_when),
            what=f"{self.name} on {self.target}",
            timeout=self._startup_timeout,
        )

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop(signal.SIGTERM, timeout=15)
        untrack(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, target={self.target!r}, running={self.running})"


class ProjectServer(GrpcProcess):
    """One of this project's servers as its console script (``<script> serve``), set up by environment
    variables with ``prefix``: loopback gRPC and metrics ports, a short drain (a throwaway server
    need not wait for long calls), then ``settings`` (names without the prefix) over those.
    """

    def __init__(
        self,
        name: str,
        *,
        script: str,
        module: str,
        prefix: str,
        settings: Mapping[str, str],
        log_path: Path,
        port: int | None,
        metrics_port: int | None,
        credentials: grpc.ChannelCredentials | None = None,
        up_when: str = "",
    ) -> None:
        port = free_port() if port is None else port
        self.metrics_port = free_port() if metrics_port is None else metrics_port
        base = {
            "GRPC_HOST": LOOPBACK,
            "GRPC_PORT": str(port),
            "METRICS_PORT": str(self.metrics_port),
            "DRAIN_GRACE_S": "1",
            # Nothing routes to a local stack by endpoints: no need to serve on after SIGTERM.
            "SHUTDOWN_DELAY_MS": "0",
        }
        super().__init__(
            name,
            [*project_command(script, module), "serve"],
            port=port,
            log_path=log_path,
            env={f"{prefix}{key}": value for key, value in {**base, **settings}.items()},
            credentials=credentials,
            up_when=up_when,
        )

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"


class CenterProcess(ProjectServer):
    """``quota-center serve`` on free loopback ports over the given Redis and PostgreSQL.

    ``settings`` are more of its settings by their names without the prefix
    (``{"FILL_INTERVAL_MS": "100"}`` sets ``QUOTA_CENTER_FILL_INTERVAL_MS``).
    """

    def __init__(
        self,
        redis_url: str,
        database_url: str,
        *,
        log_path: Path,
        port: int | None = None,
        metrics_port: int | None = None,
        settings: Mapping[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        super().__init__(
            "quota-center",
            script="quota-center",
            module="quota_center.main",
            prefix="QUOTA_CENTER_",
            settings={"REDIS_URL": redis_url, "DATABASE_URL": database_url, **(settings or {})},
            log_path=log_path,
            port=port,
            metrics_port=metrics_port,
            credentials=credentials,
        )


class AgentProcess(ProjectServer):
    """``region-agent serve`` talking to the center at ``center_target`` (its default region unless given).

    Its journal (and record log next to it) is ``journal``; restarted with the same id and
    journal it is the same agent. ``settings`` as for :class:`CenterProcess`, prefix
    ``REGION_AGENT_``; ``credentials`` for its health check when it speaks TLS. ``metrics_port=0`` asks the agent for no fixed metrics port.
    It is up once ready (its session with the center open); ``up_when="liveness"`` once alive.
    """

    def __init__(
        self,
        center_target: str,
        *,
        agent_id: str,
        journal: Path,
        region: str | None = None,
        log_path: Path,
        port: int | None = None,
        metrics_port: int | None = None,
        settings: Mapping[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        up_when: str = "",
    ) -> None:
        self.agent_id = agent_id
        own = {"AGENT_ID": agent_id, "CENTER_TARGET": center_target, "JOURNAL_PATH": str(journal)}
        if region is not None:
            own["REGION"] = region
        super().__init__(
            f"region-agent {agent_id}",
            script="region-agent",
            module="region_agent.main",
            prefix="REGION_AGENT_",
            settings={**own, **(settings or {})},
            log_path=log_path,
            port=port,
            metrics_port=metrics_port,
            credentials=credentials,
            up_when=up_when,
        )
