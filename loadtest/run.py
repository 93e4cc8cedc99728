"""``python -m loadtest.run SCENARIO``: one load test, from an empty machine to a checked result.

Without --center it starts a throwaway stack on 127.0.0.1 (Redis, PostgreSQL, the center and, for
the agent scenarios, three region agents), creates the scenario's budget, runs Locust headless for
--time (one master and --workers worker processes, or one local process with --workers 0), then
checks the budget against what the users counted (`loadtest.check`) and stops the stack; flash_sale's
report also shows the sale's three phases (serving, end game, after the sell-out), with center
calls from the center's own metrics, read while the run went on. Locust's
CSV and HTML reports, the users' tallies, the service logs and the invariant summary go to --out.
Exit status: 0 when Locust recorded no failure and every invariant held, 1 when either did not,
2 when the stack could not start or the center could not be reached.

With --web it prepares the same targets and budget, then serves Locust's web UI (on
http://127.0.0.1:8089 by default) instead of running headless: its form has the users, spawn rate
and run time, and under "Custom parameters" the scenario drop-down and the load test's options
(center, agents, budget, ...), filled in from this command and editable for each run. It runs
until Ctrl-C (or SIGTERM), then stops Locust, which writes its reports to --out, and the stack.
The stack it starts has the three agents whatever the scenario, as the UI can switch to any. No
invariant check: a session may switch scenarios and budgets between runs (run `python -m
loadtest.check` yourself against a stack you keep, e.g. `python -m devstack up`). Exit status:
Locust's (1 when it recorded a failure), 2 when the stack could not start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import NoReturn

import grpc

from devstack import LOOPBACK, Stack, StackError, free_port
from loadtest import check
from loadtest.catalog import REGIONS, SCENARIOS, SKEW, Scenario
from loadtest.phases import CenterSampler
from quota.v1 import admin_pb2, admin_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota_rules.build import add_version

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "scenarios.py"
REPORTS = HERE / "reports"
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def say(line: str) -> None:
    print(f"loadtest: {line}", file=sys.stderr, flush=True)


def seconds(duration: str) -> int:
    """Locust's run-time syntax (``90``, ``30s``, ``2m``, ``1h30m``) in seconds."""
    if duration.isdigit():
        return int(duration)
    match = _DURATION.fullmatch(duration)
    if not duration or match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {duration!r} (e.g. 30s, 2m, 1h30m)")
    h, m, s = (int(g or 0) for g in match.groups())
    return h * 3600 + m * 60 + s


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {s.name:<15} {s.summary}" for s in SCENARIOS.values())
    p = argparse.ArgumentParser(
        prog="python -m loadtest.run",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=f"scenarios:\n{lines}\n\nexamples:\n  python -m loadtest.run flash_sale --users 50 --time 30s"
        "\n  python -m loadtest.run steady --center 10.0.0.5:50051 --agents a:50061,b:50061,c:50061"
        "\n  python -m loadtest.run flash_sale --web     # then open http://127.0.0.1:8089",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument(
        "scenario",
        choices=sorted(SCENARIOS),
        help="what to run (with --web: the one the UI starts with, and whose budget is created)",
    )
    p.add_argument(
        "--users", type=_positive, default=20, help="simulated users (default: 20; with --web: the form's)"
    )
    p.add_argument(
        "--spawn-rate",
        type=float,
        default=10.0,
        help="users started per second (default: 10; with --web: the form's)",
    )
    p.add_argument(
        "--time",
        help="run time, Locust syntax: 30s, 2m, 1h30m (default: 30s; with --web: the form's run time, "
        "none by default)",
    )
    p.add_argument(
        "--workers",
        type=_non_negative,
        default=2,
        help="Locust worker processes next to the master; 0 runs one local process (default: 2)",
    )
    p.add_argument(
        "--web",
        action="store_true",
        help="serve Locust's web UI instead of running headless, until Ctrl-C; no invariant check",
    )
    p.add_argument(
        "--web-host",
        default=LOOPBACK,
        help=f"with --web: address the UI listens on (default: {LOOPBACK}; it can spend budgets)",
    )
    p.add_argument(
        "--web-port", type=_positive, default=8089, help="with --web: the UI's port (default: 8089)"
    )
    p.add_argument(
        "--out", type=Path, help="report directory (default: loadtest/reports/<scenario>-<timestamp>/)"
    )
    p.add_argument(
        "--center",
        default=os.environ.get("LOADTEST_CENTER", ""),
        help="use the center at HOST:PORT instead of starting a stack (env LOADTEST_CENTER)",
    )
    p.add_argument(
        "--agents",
        default=os.environ.get("LOADTEST_AGENTS", ""),
        help="with --center: region agents' HOST:PORT, comma-separated; skewed_regions needs three; "
        "other scenarios go straight to the center without them (env LOADTEST_AGENTS)",
    )
    p.add_argument(
        "--budget",
        default=os.environ.get("LOADTEST_BUDGET", ""),
        help="spend this existing budget instead of creating one; flash_sale and drain spend it to 0 "
        "(env LOADTEST_BUDGET)",
    )
    p.add_argument(
        "--center-metrics",
        default=os.environ.get("LOADTEST_CENTER_METRICS", ""),
        help="with --center: the center's metrics URL (http://HOST:PORT/metrics), read during the run for"
        " the center calls of flash_sale's phases (env LOADTEST_CENTER_METRICS)",
    )
    p.add_argument("--total", type=_positive, help="total of the budget created (default: the scenario's)")
    p.add_argument(
        "--duplicate-fraction",
        type=float,
        default=0.05,
        help="share of deductions and returns that repeat an earlier request (default: 0.05)",
    )
    p.add_argument(
        "--max-amount", type=_positive, help="largest amount one call asks for (default: the scenario's)"
    )
    return p


@dataclass(frozen=True, slots=True)
class Targets:
    center: str
    agents: list[str]
    center_metrics: str = ""  # the center's Prometheus URL: its Deduct count for the sale's phases


@contextlib.contextmanager
def targets(args: argparse.Namespace, scenario: Scenario, out: Path) -> Iterator[Targets]:
    """The given targets, or a stack started for the run (stopped when the block ends)."""
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if args.center:
        yield Targets(args.center, agents, args.center_metrics)
        return
    if agents:
        raise SystemExit("loadtest: --agents needs --center (without it the run starts its own stack)")
    # The web UI can switch to any scenario, so it gets the agents whatever it starts with.
    with_agents = scenario.agents or args.web
    say(
        f"starting a throwaway stack ({'center and 3 agents' if with_agents else 'center'}); logs in {out}/logs"
    )
    regions = REGIONS[: len(SKEW)] if with_agents else ()
    with Stack(regions=regions, log_dir=out / "logs", progress=say) as stack:
        yield Targets(stack.center, stack.agents, stack.center_metrics)
        say("stopping the stack")


def prepare_budget(center: str, args: argparse.Namespace, scenario: Scenario, stamp: str) -> str:
    with grpc.insecure_channel(center) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        if args.budget:
            admin.GetBudget(admin_pb2.GetBudgetRequest(budget_id=args.budget), timeout=10)
            return str(args.budget)
        budget_id = f"lt-{scenario.name.replace('_', '-')}-{stamp}-{uuid.uuid4().hex[:4]}"
        total = args.total or scenario.total
        reply = admin.CreateBudget(
            admin_pb2.CreateBudgetRequest(
                budget_id=budget_id, unit="unit", total=total, actor="loadtest", reason=f"{scenario.name} run"
            ),
            timeout=30,
        )
        if reply.code != pb.RESULT_CODE_OK:
            raise SystemExit(f"loadtest: creating budget {budget_id} got {reply.code}: {reply.message}")
        say(f"created budget {budget_id} with total {total}")
        return budget_id


def locust_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
    }


def locust_argv(
    args: argparse.Namespace, scenario: Scenario, t: Targets, budget_id: str, out: Path
) -> list[str]:
    """The master's (or the one local process's) command line, headless or serving the web UI."""
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--scenario", scenario.name]
    argv += ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]
    argv += ["--csv", str(out / "locust"), "--html", str(out / "report.html"), "--stop-timeout", "5"]
    argv += ["--center", t.center, "--budget", budget_id, "--tally-dir", str(out / "tallies")]
    argv += ["--duplicate-fraction", str(args.duplicate_fraction)]
    if args.web:
        # The UI may switch scenarios: every agent stays on offer, and the largest amount stays
        # each scenario's own unless one was asked for.
        argv += ["--agents", ",".join(t.agents), "--max-amount", str(args.max_amount or 0)]
        argv += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        return [*argv, "--run-time", args.time] if args.time else argv
    argv += ["--agents", ",".join(t.agents) if scenario.agents else ""]
    argv += ["--max-amount", str(args.max_amount or scenario.max_amount)]
    return [*argv, "--headless", "--run-time", args.time]


def start_workers(count: int, port: int, out: Path) -> list[subprocess.Popen[bytes]]:
    """Locust workers for the master on `port`; each loads every user class (the master picks)."""
    workers = []
    for i in range(count):
        worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
        worker += ["--master-host", LOOPBACK, "--master-port", str(port)]
        with (out / f"worker-{i}.log").open("wb") as log:
            workers.append(subprocess.Popen(worker, env=locust_env(), stdout=log, stderr=subprocess.STDOUT))
    return workers


def wait_workers(workers: list[subprocess.Popen[bytes]], out: Path, grace: float = 30) -> None:
    """Wait for the workers the master told to quit; end those still up after `grace` s."""
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            # A worker that had reconnected when the master quit is not told; it writes its
            # counts on SIGTERM as on a quit.
            w.terminate()
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    bad = [i for i, w in enumerate(workers) if w.returncode not in (0, None)]
    if bad:
        say(f"workers {bad} exited non-zero; see {out}/worker-N.log")


def run_locust(args: argparse.Namespace, scenario: Scenario, t: Targets, budget_id: str, out: Path) -> int:
    argv = locust_argv(args, scenario, t, budget_id, out)
    limit = seconds(args.time) + 120
    if args.workers == 0:
        say(f"running Locust ({scenario.user_class}, {args.users} users, {args.time}) in one process")
        try:
            return subprocess.run(argv, env=locust_env(), timeout=limit, check=False).returncode
        except subprocess.TimeoutExpired:
            say(f"Locust did not finish within {limit} s")
            return 1
    port = free_port()
    master = [*argv, "--master", "--master-bind-host", LOOPBACK, "--master-bind-port", str(port)]
    master += ["--expect-workers", str(args.workers)]
    say(
        f"running Locust ({scenario.user_class}, {args.users} users, {args.time}): master + {args.workers} workers"
    )
    workers: list[subprocess.Popen[bytes]] = []
    with subprocess.Popen(master, env=locust_env()) as leader:
        try:
            workers = start_workers(args.workers, port, out)
            code = leader.wait(limit)
        except subprocess.TimeoutExpired:
            say(f"Locust did not finish within {limit} s")
            leader.kill()
            code = 1
        finally:
            wait_workers(workers, out)
    return code


class Terminated(Exception):
    """SIGTERM to this process alone (a Ctrl-C in a terminal reaches Locust's processes too)."""


def _terminated(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


def stop_locust(leader: subprocess.Popen[bytes], grace: float) -> int:
    """Locust's exit status, once it has stopped: asked with SIGINT if it is still up after `grace` s.

    SIGINT, as Ctrl-C: Locust writes its HTML report only on that way out.
    """
    with contextlib.suppress(subprocess.TimeoutExpired):
        return leader.wait(grace)
    leader.send_signal(signal.SIGINT)
    try:
        return leader.wait(30)
    except subprocess.TimeoutExpired:
        leader.kill()
        return leader.wait()


def serve_web_ui(args: argparse.Namespace, scenario: Scenario, t: Targets, budget_id: str, out: Path) -> int:
    """Locust with its web UI (and workers) until Ctrl-C or SIGTERM; Locust's exit status."""
    signal.signal(signal.SIGTERM, _terminated)
    argv = locust_argv(args, scenario, t, budget_id, out)
    workers: list[subprocess.Popen[bytes]] = []
    if args.workers:
        port = free_port()
        argv += ["--master", "--master-bind-host", LOOPBACK, "--master-bind-port", str(port)]
    with subprocess.Popen(argv, env=locust_env()) as leader:
        try:
            if args.workers:
                workers = start_workers(args.workers, port, out)
            say(
                f"web UI on http://{args.web_host}:{args.web_port} ({scenario.name} on budget {budget_id}, "
                f"Locust workers: {args.workers}); Ctrl-C to stop"
            )
            return leader.wait()
        except KeyboardInterrupt:
            say("stopping Locust")
            # The terminal's Ctrl-C reached Locust as well: a second one would cut its shutdown short.
            return stop_locust(leader, grace=5)
        except Terminated:
            say("stopping Locust")
            return stop_locust(leader, grace=0)
        finally:
            wait_workers(workers, out, grace=5)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.time is None and not args.web:
        args.time = "30s"
    try:
        if args.time is not None:
            seconds(args.time)
    except argparse.ArgumentTypeError as exc:
        parser().error(str(exc))
    if not 0 <= args.duplicate_fraction <= 1:
        parser().error(f"--duplicate-fraction must be 0..1, got {args.duplicate_fraction}")
    scenario = SCENARIOS[args.scenario]
    agents = [a for a in args.agents.split(",") if a.strip()]
    if args.center and scenario.name == "skewed_regions" and len(agents) != len(SKEW):
        parser().error(f"skewed_regions needs --agents with {len(SKEW)} addresses")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = (args.out or REPORTS / f"{scenario.name}-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with targets(args, scenario, out) as t:
            if args.web:
                budget_id = prepare_budget(t.center, args, scenario, stamp)
                code = serve_web_ui(args, scenario, t, budget_id, out)
                say(f"Locust exited with {code}; reports in {out}")
                return code
            if not scenario.agents:
                t = Targets(t.center, [], t.center_metrics)
            budget_id = prepare_budget(t.center, args, scenario, stamp)
            sampler = CenterSampler(t.center_metrics) if scenario.phases and t.center_metrics else None
            if sampler is not None:
                sampler.start()
            try:
                locust_code = run_locust(args, scenario, t, budget_id, out)
            finally:
                if sampler is not None:
                    sampler.stop()
            say(f"Locust exited with {locust_code}; checking the budget")
            result = check.check(
                t.center,
                budget_id,
                scenario,
                out / "tallies",
                progress=lambda line: say(f"check: {line}"),
                center_samples=None if sampler is None else sampler.samples,
            )
    except StackError as exc:
        say(f"could not start the stack: {exc}")
        return 2
    except grpc.RpcError as exc:
        say(f"a call to the center failed: {exc}")
        return 2
    text = check.summary(result)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(
        json.dumps({**check.to_json(result), "locust_exit": locust_code}, indent=2)
    )
    print(text)
    if locust_code != 0:
        print(f"Locust exited with {locust_code} (failures recorded: see {out}/locust_failures.csv)")
    print(f"reports: {out}")
    return 0 if result.ok and locust_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
