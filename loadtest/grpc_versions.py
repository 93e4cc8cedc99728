"""Compare grpcio versions on this machine: the echo ceiling and the agent's handler, per version.

``python -m loadtest.grpc_versions 1.82.3 1.85.3`` builds one virtualenv per version (cached under
``--cache``, default ``loadtest/reports/grpc-venvs``) with that grpcio, the grpcio-tools of the same
version (the stubs are generated with it, so older versions get stubs they can load) and the
protobuf they resolve to. Then, for ``--rounds`` rounds, each version in turn starts two servers on
loopback with the same client model as ``loadtest.bench``:

* *echo*: ``Deduct`` and ``DeductBatch`` answered at once, the transport's ceiling;
* *agent*: the agent's own ``QuotaServicer`` over a real journal and record log, holding a large
  slice (no center, no session: what is compared is grpcio under the agent's request path).

Each server gets a closed-loop window of ``Deduct`` and of ``DeductBatch`` (alternating echo and
agent); the table shows per version the median throughput of each and the agent's ratio to the
echo of the same round. Versions alternate within every round, so drift of the shared machine
spreads over all of them. Needs the package index (pip) the first time a version is asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quota_rules.build import add_version

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / "loadtest" / "reports" / "grpc-venvs"
BUDGET = "echo"


# ---- the parent: venvs, rounds, table ---------------------------------------------------------


def venv_for(version: str, cache: Path, log: Any) -> Path:
    """The virtualenv of grpcio ``version`` with its stubs, made if missing."""
    home = cache / version
    python = home / "bin" / "python"
    stubs = home / "stubs"
    if (stubs / "quota" / "v1" / "quota_pb2_grpc.py").exists():
        return home
    log(f"grpcio {version}: creating {home}")
    venv.create(home, with_pip=True, clear=True)
    # What the servers import besides grpc: the agent's metrics, and the health service and Redis
    # client that the echo server's module imports (its EVALSHA variant is not run here).
    packages = [
        f"grpcio=={version}",
        f"grpcio-tools=={version}",
        f"grpcio-health-checking=={version}",
        "prometheus-client",
        "redis",
    ]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    sources = sorted(str(p) for p in (REPO_ROOT / "proto" / "quota" / "v1").glob("*.proto"))
    stubs.mkdir(exist_ok=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO_ROOT / 'proto'}",
            f"--python_out={stubs}",
            f"--grpc_python_out={stubs}",
            *sources,
        ],
        check=True,
    )
    for package in (stubs / "quota", stubs / "quota" / "v1"):
        (package / "__init__.py").touch()
    return home


def run_round(home: Path, seconds: float) -> dict[str, Any]:
    """One round under the venv at ``home``: the child prints its measurements as JSON."""
    env = {**os.environ, "PYTHONPATH": f"{home / 'stubs'}{os.pathsep}{REPO_ROOT}"}
    out = subprocess.run(
        [str(home / "bin" / "python"), "-m", "loadtest.grpc_versions", "--child", "--seconds", str(seconds)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    head = (
        f"{'grpcio':>8}  {'protobuf':>8}  {'echo Deduct/s':>13}  {'agent Deduct/s':>14}  {'ratio':>5}"
        f"  {'echo batch ded/s':>16}  {'agent batch ded/s':>17}  {'ratio':>5}"
    )
    lines = [head, "-" * len(head)]
    for version, rounds in results.items():

        def med(key: str, rounds: list[dict[str, Any]] = rounds) -> float:
            return float(statistics.median(r[key] for r in rounds))

        def ratio(path: str, rounds: list[dict[str, Any]] = rounds) -> float:
            return float(statistics.median(r[f"agent.{path}"] / r[f"echo.{path}"] for r in rounds))

        lines.append(
            f"{version:>8}  {rounds[0]['protobuf']:>8}  {med('echo.deduct'):>13,.0f}  {med('agent.deduct'):>14,.0f}"
            f"  {ratio('deduct'):>5.2f}  {med('echo.batch'):>16,.0f}  {med('agent.batch'):>17,.0f}"
            f"  {ratio('batch'):>5.2f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.grpc_versions",
        description="Measure the echo ceiling and the agent's request path under several grpcio versions, "
        "one virtualenv each (made with pip the first time), rounds alternating the versions.",
    )
    add_version(p)
    p.add_argument("versions", nargs="*", help="grpcio versions, e.g. 1.82.3 1.85.3")
    p.add_argument("--rounds", type=int, default=3, help="rounds over all versions (default 3)")
    p.add_argument("--seconds", type=float, default=2.0, help="window of each measurement (default 2)")
    p.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"where the venvs live (default {DEFAULT_CACHE})"
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        import asyncio

        asyncio.run(_serve(args.serve[0], int(args.serve[1])))
        return 0
    if args.child:
        print(json.dumps(_measure(args.seconds)))
        return 0
    if not args.versions:
        p.error("name at least one grpcio version")
    if args.rounds < 1 or args.seconds <= 0:
        p.error("--rounds must be at least 1 and --seconds positive")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.versions}
    try:
        homes = {v: venv_for(v, args.cache, log) for v in args.versions}
    except subprocess.CalledProcessError as exc:
        log(f"failed: {' '.join(map(str, exc.cmd))}: exit {exc.returncode}")
        log("(a version needs both grpcio and grpcio-tools of that version on the package index)")
        return 1
    try:
        for n in range(args.rounds):
            for version, home in homes.items():
                log(f"round {n + 1}/{args.rounds}: grpcio {version}")
                results[version].append(run_round(home, args.seconds))
    except subprocess.CalledProcessError as exc:
        log(f"a measurement failed (exit {exc.returncode}):\n{exc.stderr}")
        return 1
    print("\n".join(table(results)))
    print(
        "ratio: the agent's deductions/s over the echo's in the same round (median over rounds); "
        f"{args.rounds} rounds, windows of {args.seconds:g} s, 2 client processes, closed loop "
        "(64 Deduct or 8 DeductBatch×100 in flight each)"
    )
    return 0


# ---- the child: servers and clients under one grpcio ------------------------------------------


def _measure(seconds: float) -> dict[str, Any]:
    import grpc
    from google.protobuf import __version__ as protobuf_version

    from devstack import free_port
    from loadtest.bench.client import CLOSED, DEDUCT, DEDUCT_BATCH, Clients, Job

    ports = {kind: free_port() for kind in ("echo", "agent")}
    clients = Clients(2)
    result: dict[str, Any] = {"grpcio": grpc.__version__, "protobuf": protobuf_version}
    try:
        with serving(list(ports.items())):
            for method, key, concurrency, batch in (
                (DEDUCT, "deduct", 64, 1),
                (DEDUCT_BATCH, "batch", 8, 100),
            ):
                for kind, port in ports.items():
                    start = time.monotonic() + 0.3
                    prefix = f"{kind}-{key}-{time.time_ns()}"
                    jobs = [
                        Job(
                            target=f"127.0.0.1:{port}",
                            method=method,
                            budget_id=BUDGET,
                            prefix=prefix,
                            mode=CLOSED,
                            start_at=start,
                            warmup_s=0.5,
                            seconds=seconds,
                            batch=batch,
                            concurrency=concurrency,
                        )
                        for _ in range(clients.count)
                    ]
                    clients.start(jobs)
                    outcome = clients.collect()
                    if outcome.failure or outcome.errors or outcome.items_refused:
                        raise RuntimeError(f"{kind} {method}: {outcome.failure or dict(outcome.errors)}")
                    result[f"{kind}.{key}"] = outcome.items_ok / seconds
    finally:
        clients.close()
    return result


@contextlib.contextmanager
def serving(servers: list[tuple[str, int]]) -> Iterator[None]:
    """``--serve KIND PORT`` processes, one per pair, until the block ends (then SIGKILLed).

    They register the bare generated servicer, without a health service: each is up once its
    port accepts connections. Several may share a port (grpcio sets SO_REUSEPORT).
    """
    from devstack import ServerProcess, port_open

    with tempfile.TemporaryDirectory(prefix="grpc-serve-") as logs:
        started: list[ServerProcess] = []
        try:
            for i, (kind, port) in enumerate(servers):
                argv = [sys.executable, "-m", "loadtest.grpc_versions", "--serve", kind, str(port)]
                proc = ServerProcess(argv, log_path=Path(logs) / f"{kind}-{i}.log", cwd=REPO_ROOT)
                started.append(proc)
                proc.wait_until(functools.partial(port_open, port), what=f"{kind} on port {port}", timeout=30)
            yield
        finally:
            for proc in started:
                proc.kill()


async def _serve(kind: str, port: int) -> None:
    # Registered the plain generated way: older grpcio versions lack what add_servicer uses.
    import grpc

    from loadtest.bench.echo import EchoServicer
    from quota.v1 import quota_pb2_grpc

    server = grpc.aio.server()
    servicer = _agent_servicer() if kind == "agent" else EchoServicer()
    quota_pb2_grpc.add_QuotaServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def _agent_servicer() -> Any:
    from quota_rules.modes import Mode
    from quota_rules.usage import Usage
    from region_agent.api import QuotaServicer
    from region_agent.core.agent import Agent
    from region_agent.core.slices import Holding, State
    from region_agent.metrics import Metrics
    from region_agent.session import monotonic_ms
    from region_agent.storage.journal import Journal
    from region_agent.storage.record_log import RecordLog, path_for

    journal_path = Path(tempfile.mkdtemp(prefix="grpc-versions-")) / "agent.journal"
    journal = Journal(journal_path)
    records = RecordLog(path_for(journal_path), journal)
    now = monotonic_ms()
    agent = Agent(journal, now=now, record_log=records)
    big = 2**50  # never runs out in a window
    agent.adopt(Holding(BUDGET, 1, big, Usage(), lease_ms=10**9, mode=Mode.NORMAL, state=State.ACTIVE), now)
    center: Any = None  # never reached: the slice covers every request
    return QuotaServicer(agent, center, Metrics(), monotonic_ms)


if __name__ == "__main__":
    sys.exit(main())
