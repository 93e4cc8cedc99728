"""A throwaway stack on loopback for a load test: Redis, PostgreSQL, the center, region agents.

`python -m loadtest.run` starts one for its run; `python -m loadtest.stack` starts one and keeps
it until Ctrl-C or SIGTERM, printing its targets as one JSON line (to point Locust at by hand).

The same approach as the tests' harness (`tests/harness`): each server in a temp dir on a free
127.0.0.1 port, Redis keeping nothing on disk, PostgreSQL with durability off and run as the
`postgres` OS user when we are root (it refuses root). The center and the agents are their own
commands (`quota-center serve`, `region-agent serve`) configured by environment variables. Every
process logs to a file in the log directory; a start-up failure quotes the log's tail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.catalog import REGIONS

LOOPBACK = "127.0.0.1"
_INSTALL_HINT = "run scripts/install-deps.sh (Debian packages redis-server and postgresql)"


class StackError(RuntimeError):
    """A part of the stack could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/local/bin")
    if found is None:
        raise StackError(f"redis-server not found on PATH; {_INSTALL_HINT}")
    return found


def _postgres_binary(name: str) -> str:
    """initdb or postgres: $PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian), else PATH."""
    dirs = [Path(os.environ["PG_BINDIR"])] if os.environ.get("PG_BINDIR") else []
    versioned = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / name).is_file()]
    dirs += sorted(versioned, key=lambda d: _version(d.parent.name), reverse=True)
    for d in dirs:
        if (d / name).is_file():
            return str(d / name)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found (PG_BINDIR, /usr/lib/postgresql/*/bin, PATH); {_INSTALL_HINT}")
    return found


def _version(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (-1,)


def _command(script: str, module: str) -> list[str]:
    """The console script next to this Python (the venv's), else the module's entry point."""
    path = Path(sys.executable).parent / script
    return [str(path)] if path.is_file() else [sys.executable, "-m", module]


def _service_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root, but PostgreSQL refuses root and there is no 'postgres' OS user; "
            f"{_INSTALL_HINT}, or run as a normal user"
        ) from None
    return "postgres"


def _temp_base() -> Path:
    """A temp root the postgres user can traverse (TMPDIR may be private to root)."""
    base = Path(tempfile.gettempdir()).resolve()
    if any(not p.stat().st_mode & 0o001 for p in (base, *base.parents)):
        return Path("/tmp")
    return base


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"    (no log at {path}: {exc})"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (log is empty)"


class Process:
    """A long-running child whose output goes to a log file, in a session of its own."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        ids = pwd.getpwnam(user) if user is not None else None
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=None if env is None else {**os.environ, **env},
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop them in order
                user=user,
                group=None if ids is None else ids.pw_gid,
                extra_groups=None if ids is None else [],
            )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive:
                raise self.failure(f"{self.name} exited during start-up (exit {self.popen.returncode})")
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL, 5)
                raise self.failure(f"{self.name} not ready after {timeout:.0f} s")
            time.sleep(0.1)

    def failure(self, message: str) -> StackError:
        return StackError(
            f"{message}\n  command: {' '.join(self.argv)}\n  log ({self.log_path}):\n{_log_tail(self.log_path)}"
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> None:
        """Send `sig`, wait up to `timeout`, then SIGKILL the whole process group."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _postgres_ready(data: Path, pid: int) -> bool:
    # postmaster.pid: line 1 the pid, line 8 "ready" once connections are accepted.
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def serving(target: str, timeout: float = 2.0) -> bool:
    """Whether the gRPC server at `target` answers its health check with SERVING."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Stack:
    """Redis, PostgreSQL, one center and `agents` region agents, all on 127.0.0.1."""

    def __init__(self, *, agents: int, log_dir: Path, progress: Callable[[str], None]) -> None:
        if agents > len(REGIONS):
            raise ValueError(f"at most {len(REGIONS)} agents")
        self.agent_count = agents
        self.log_dir = log_dir
        self.progress = progress
        self.center = ""
        self.agents: list[str] = []
        self.center_metrics = ""  # http://host:port/metrics
        self.agent_metrics: list[str] = []
        self._dir: Path | None = None
        self._procs: list[Process] = []  # in start order; stopped in reverse

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        user = _service_user()
        self._dir = Path(tempfile.mkdtemp(prefix="qc-loadtest-", dir=_temp_base()))
        self._dir.chmod(0o711)  # the postgres user must reach its own dir inside
        redis_url = self._start_redis()
        database_url = self._start_postgres(user)
        self._start_center(redis_url, database_url)
        for region in REGIONS[: self.agent_count]:
            self._start_agent(region)
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            # PostgreSQL: SIGINT is its fast shutdown; the others drain on SIGTERM.
            proc.stop(signal.SIGINT if proc.name == "postgres" else signal.SIGTERM)
        self._procs.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _spawn(
        self, name: str, argv: Sequence[str], *, user: str | None = None, env: Mapping[str, str] | None = None
    ) -> Process:
        assert self._dir is not None
        proc = Process(name, argv, self.log_dir / f"{name}.log", cwd=self._dir, user=user, env=env)
        self._procs.append(proc)
        return proc

    def _start_redis(self) -> str:
        assert self._dir is not None
        port = free_port()
        self.progress(f"starting redis-server on {LOOPBACK}:{port}")
        argv = [_redis_binary(), "--port", str(port), "--bind", LOOPBACK, "--dir", str(self._dir)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        self._spawn("redis", argv).wait_until(lambda: _redis_ready(port), timeout=20)
        return f"redis://{LOOPBACK}:{port}/0"

    def _start_postgres(self, user: str | None) -> str:
        assert self._dir is not None
        pg = self._dir / "pg"
        pg.mkdir()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pg, entry.pw_uid, entry.pw_gid)
        self.progress("initdb (a throwaway PostgreSQL cluster)")
        initdb = [_postgres_binary("initdb"), "-D", str(pg / "data"), "-A", "trust", "-U", "postgres"]
        initdb += ["--no-sync", "-E", "UTF8", "--locale=C"]
        done = subprocess.run(initdb, capture_output=True, text=True, user=user, cwd=pg, check=False)
        if done.returncode != 0:
            raise StackError(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        port = free_port()
        self.progress(f"starting postgres on {LOOPBACK}:{port}")
        argv = [_postgres_binary("postgres"), "-D", str(pg / "data"), "-p", str(port), "-k", str(pg)]
        argv += ["-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off"]
        argv += ["-c", "full_page_writes=off"]
        proc = self._spawn("postgres", argv, user=user)
        proc.wait_until(lambda: _postgres_ready(pg / "data", proc.popen.pid), timeout=60)
        return f"postgresql://postgres@{LOOPBACK}:{port}/postgres"

    def _start_center(self, redis_url: str, database_url: str) -> None:
        port = free_port()
        env = {
            "QUOTA_CENTER_GRPC_HOST": LOOPBACK,
            "QUOTA_CENTER_GRPC_PORT": str(port),
            "QUOTA_CENTER_METRICS_PORT": str(metrics_port := free_port()),
            "QUOTA_CENTER_REDIS_URL": redis_url,
            "QUOTA_CENTER_DATABASE_URL": database_url,
            "QUOTA_CENTER_DRAIN_GRACE_S": "1",
        }
        self.center = f"{LOOPBACK}:{port}"
        self.center_metrics = f"http://{LOOPBACK}:{metrics_port}/metrics"
        self.progress(f"starting quota-center on {self.center}")
        proc = self._spawn("center", [*_command("quota-center", "quota_center.main"), "serve"], env=env)
        proc.wait_until(lambda: serving(self.center), timeout=60)

    def _start_agent(self, region: str) -> None:
        assert self._dir is not None
        port = free_port()
        agent_id = f"{region}-1"
        env = {
            "REGION_AGENT_AGENT_ID": agent_id,
            "REGION_AGENT_REGION": region,
            "REGION_AGENT_CENTER_TARGET": self.center,
            "REGION_AGENT_GRPC_HOST": LOOPBACK,
            "REGION_AGENT_GRPC_PORT": str(port),
            "REGION_AGENT_METRICS_PORT": str(metrics_port := free_port()),
            "REGION_AGENT_JOURNAL_PATH": str(self._dir / f"{agent_id}.journal"),
            "REGION_AGENT_DRAIN_GRACE_S": "1",
        }
        target = f"{LOOPBACK}:{port}"
        self.progress(f"starting region-agent {agent_id} on {target}")
        proc = self._spawn(
            f"agent-{agent_id}", [*_command("region-agent", "region_agent.main"), "serve"], env=env
        )
        proc.wait_until(lambda: serving(target), timeout=60)
        self.agents.append(target)
        self.agent_metrics.append(f"http://{LOOPBACK}:{metrics_port}/metrics")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.stack",
        description="Start Redis, PostgreSQL, a center and region agents on 127.0.0.1 and keep them "
        'until Ctrl-C or SIGTERM. Prints one JSON line: {"center": ..., "agents": [...], "logs": ...}.',
    )
    p.add_argument(
        "--agents", type=int, default=len(REGIONS), choices=range(len(REGIONS) + 1), help="default: 3"
    )
    p.add_argument("--log-dir", type=Path, help="where the services log (default: a new temp dir)")
    args = p.parse_args(argv)
    log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="qc-loadtest-logs-"))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    def progress(line: str) -> None:
        print(f"loadtest.stack: {line}", file=sys.stderr, flush=True)

    try:
        with Stack(agents=args.agents, log_dir=log_dir, progress=progress) as stack:
            print(
                json.dumps({"center": stack.center, "agents": stack.agents, "logs": str(log_dir)}), flush=True
            )
            progress("running; Ctrl-C or SIGTERM stops it")
            while True:
                signal.pause()
    except StackError as exc:
        progress(str(exc))
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
