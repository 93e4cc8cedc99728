"""``python -m loadtest.bench``: throughput and latency of the agent's and the center's spending paths
against the ceilings of the transport, measured in one run on loopback.

What it starts (``loadtest.bench_stack``): a throwaway Redis and PostgreSQL, the center
(``quota-center serve``), one region agent (``region-agent serve``) and two echo servers
(``loadtest.bench_echo``): *echo* answers Deduct and DeductBatch at once, *echo+EVALSHA* runs
one trivial Lua script per deduction first (a DeductBatch's in one pipeline). Each is its own process with one asyncio loop and a
``grpc.aio`` server, as the center and the agent are, so the ratios compare like with like.

What it measures, each for a warm-up and then ``--seconds``:

* saturation: a closed loop with ``--clients`` × ``--concurrency`` calls in flight (DeductBatch:
  ``--batch-concurrency``), per path:
  calls/s, deductions/s, p50 and p99 latency (at saturation that latency is mostly queueing);
* a fixed moderate rate: an open loop at ``--open-fraction`` of the echo throughput (unary
  paths: of echo Deduct; batch paths: of echo DeductBatch), latency from the scheduled start;
* center calls (forwards plus slice requests, from the agent's ``/metrics``) per thousand
  deductions served through the agent, over the measurement windows of the agent's paths;
* a drain: a small budget spent to the end through the agent and the center at once, with the
  holders' balances read from Admin ``Audit`` every 100 ms.

Ratios are throughput / ceiling, both taken in this run, so they mean something on a shared or
slow machine where absolute numbers do not. The targets are checked against them.

Outputs: the tables on stdout, progress on stderr, the report as JSON (``--json``) and a PNG
chart (``--png``): matplotlib, from the ``loadtest`` extra, draws it (bars of each path's
throughput against its ceiling, and the remaining budget per holder during the drain).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from loadtest.bench_client import CLOSED, DEDUCT, DEDUCT_BATCH, OPEN, Clients, Job, Outcome
from loadtest.bench_stack import REPO_ROOT, Stack
from quota.v1 import admin_pb2, admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota_rules.loops import EVENT_LOOPS

REPORTS = REPO_ROOT / "loadtest" / "reports"
BIG_TOTAL = 2**50  # far more than any run spends: the agent and the sub-buckets serve from slices
SAMPLE_EVERY_S = 0.1
SETTLE_S = 0.5
PRIME_TIMEOUT_S = 15.0

AGENT, CENTER, ECHO, EVALSHA = "agent", "center", "echo", "evalsha"


@dataclass(frozen=True, slots=True)
class PathSpec:
    key: str
    label: str
    server: str  # AGENT, CENTER, ECHO or EVALSHA
    method: str
    ceiling: str | None  # key of the path this one is compared with
    target_ratio: float | None = None


def path_specs(batch: int) -> list[PathSpec]:
    b = f"DeductBatch×{batch}"
    return [
        PathSpec("echo.deduct", "echo Deduct", ECHO, DEDUCT, None),
        PathSpec("evalsha.deduct", "echo+EVALSHA Deduct", EVALSHA, DEDUCT, "echo.deduct"),
        PathSpec("agent.deduct", "agent Deduct", AGENT, DEDUCT, "echo.deduct", 0.85),
        PathSpec("center.deduct", "center Deduct", CENTER, DEDUCT, "evalsha.deduct", 0.7),
        PathSpec("echo.batch", f"echo {b}", ECHO, DEDUCT_BATCH, None),
        PathSpec("evalsha.batch", f"echo+EVALSHA {b}", EVALSHA, DEDUCT_BATCH, "echo.batch"),
        PathSpec("agent.batch", f"agent {b}", AGENT, DEDUCT_BATCH, "echo.batch", 0.6),
        PathSpec("center.batch", f"center {b}", CENTER, DEDUCT_BATCH, "evalsha.batch"),
    ]


CALLS_PER_THOUSAND_LIMIT = 10.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Start Redis, PostgreSQL, the center, a region agent and two echo servers on 127.0.0.1 "
        "(all throwaway, in a temp dir), then measure in one run, for the agent's and the center's Deduct "
        "and DeductBatch and for their ceilings (echo, echo+EVALSHA): throughput at saturation (closed "
        "loop), p50/p99 latency at saturation and at a fixed open-loop rate, the ratio of each path to "
        "its ceiling, center calls per thousand deductions served through the agent, and a drain of a "
        "small budget. Prints tables on stdout (progress on stderr), writes a JSON report and a PNG chart.",
        epilog="Exit status: 0 when every measurement ran (targets met or not, unless --fail-on-target), "
        "1 when a server could not be started or a measurement got no answer at all, 3 with "
        "--fail-on-target when a target is not met.",
    )
    p.add_argument(
        "--seconds", type=float, default=3.0, help="measurement window of each path and mode (default 3)"
    )
    p.add_argument(
        "--warmup", type=float, default=1.0, help="warm-up before each window, not counted (default 1)"
    )
    p.add_argument(
        "--clients",
        type=int,
        default=2,
        help="client processes, each one asyncio loop and channel (default 2)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="Deduct calls in flight per client process in the closed loop (default 64)",
    )
    p.add_argument(
        "--batch-concurrency",
        type=int,
        default=8,
        help="DeductBatch calls in flight per client process in the closed loop (default 8)",
    )
    p.add_argument("--batch", type=int, default=100, help="deductions per DeductBatch call (default 100)")
    p.add_argument(
        "--open-fraction",
        type=float,
        default=0.5,
        help="open-loop rate as a fraction of the echo calls/s of the same method, or of the path's own"
        " closed-loop calls/s when that is lower (default 0.5)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        help="length of the drain (default: 2 × --seconds, at least 2)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the JSON report (default loadtest/reports/bench-<timestamp>.json)",
    )
    p.add_argument(
        "--png", type=Path, default=None, help="where to write the chart (default: the JSON path with .png)"
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="a quick smoke run: --seconds 0.5 --warmup 0.3 --concurrency 8 --batch-concurrency 2 --batch 20"
        " --drain-seconds 1.5 --pairs 1"
        " (explicit options still win)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="closed-loop windows of each compared path and of its ceiling, in turn; the ratio is the"
        " median pair's (default 3)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the servers' logs")
    p.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="asyncio",
        help="event loop of the servers measured: center, agent and echo servers alike (default asyncio)",
    )
    p.add_argument("--fail-on-target", action="store_true", help="exit 3 when a target is not met")
    return p


@dataclass(frozen=True, slots=True)
class Config:
    seconds: float
    warmup: float
    clients: int
    concurrency: int
    batch_concurrency: int
    batch: int
    open_fraction: float
    drain_seconds: float
    keep: bool = False
    event_loop: str = "asyncio"
    pairs: int = 3


def config_from(args: argparse.Namespace, given: set[str]) -> Config:
    tiny = {
        "seconds": 0.5,
        "warmup": 0.3,
        "concurrency": 8,
        "batch_concurrency": 2,
        "batch": 20,
        "drain_seconds": 1.5,
        "pairs": 1,
    }

    def pick(name: str) -> Any:
        if args.tiny and name in tiny and name not in given:
            return tiny[name]
        return getattr(args, name)

    seconds = float(pick("seconds"))
    drain = pick("drain_seconds")
    return Config(
        seconds=seconds,
        warmup=float(pick("warmup")),
        clients=int(args.clients),
        concurrency=int(pick("concurrency")),
        batch_concurrency=int(pick("batch_concurrency")),
        batch=int(pick("batch")),
        open_fraction=float(args.open_fraction),
        drain_seconds=float(drain) if drain is not None else max(2.0, 2 * seconds),
        keep=bool(args.keep),
        event_loop=str(args.event_loop),
        pairs=int(pick("pairs")),
    )


def _given(argv: list[str]) -> set[str]:
    """The option names the command line set (so that --tiny does not override them)."""
    names = set()
    for arg in argv:
        if arg.startswith("--"):
            names.add(arg[2:].split("=", 1)[0].replace("-", "_"))
    return names


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (q in 0..1)."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(q * len(values)) - 1)]


def stats(outcome: Outcome, seconds: float, batch: int) -> dict[str, Any]:
    lat = sorted(outcome.latencies)
    return {
        "calls": outcome.calls,
        "calls_per_s": outcome.calls / seconds,
        "deductions_per_s": outcome.items_ok / seconds,
        "batch": batch,
        "p50_ms": percentile(lat, 0.50) * 1000 if lat else None,
        "p99_ms": percentile(lat, 0.99) * 1000 if lat else None,
        "refused": outcome.items_refused,
        "errors": dict(outcome.errors),
    }


# --- agent metrics -------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Center calls and deductions so far, from the agent's Prometheus text."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    sums = {"forwarded": 0.0, "refills": 0.0, "served": 0.0}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels, _, value = rest.rpartition("} ")
        if name == "agent_forwarded_total":
            sums["forwarded"] += float(value)
            reason = labels.partition('reason="')[2].partition('"')[0]
            sums[f"forwarded:{reason}"] = sums.get(f"forwarded:{reason}", 0.0) + float(value)
        elif name == "agent_refills_total":
            sums["refills"] += float(value)
        elif name == "agent_served_total" and (
            'method="Deduct"' in labels or 'method="DeductBatch"' in labels
        ):
            sums["served"] += float(value)
    return sums


def slice_available(url: str, budget_id: str) -> float:
    """``agent_slice_available`` of one budget (0 when the agent does not hold it)."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    wanted = f'agent_slice_available{{budget="{budget_id}"}} '
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted) :])
    return 0.0


def per_thousand(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    center = (after["forwarded"] - before["forwarded"]) + (after["refills"] - before["refills"])
    served = after["served"] - before["served"]
    reasons = {
        k.partition(":")[2]: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith("forwarded:") and after[k] > before.get(k, 0.0)
    }
    return {
        "center_calls": center,
        "forwarded": after["forwarded"] - before["forwarded"],
        "forwarded_by_reason": reasons,
        "refills": after["refills"] - before["refills"],
        "deductions": served,
        "per_thousand": center * 1000 / served if served > 0 else None,
    }


# --- the run -------------------------------------------------------------------------------------


class Bench:
    def __init__(self, cfg: Config, stack: Stack, clients: Clients, log: Progress) -> None:
        self.cfg = cfg
        self.stack = stack
        self.clients = clients
        self.log = log
        self.channel = grpc.insecure_channel(stack.center_target)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.run_id = uuid.uuid4().hex[:8]
        self.budgets: dict[str, str] = {}
        self.windows: list[tuple[str, dict[str, float], dict[str, float]]] = []

    def target(self, server: str) -> str:
        return {
            AGENT: self.stack.agent_target,
            CENTER: self.stack.center_target,
            ECHO: self.stack.echo_target,
            EVALSHA: self.stack.redis_echo_target,
        }[server]

    def create_budget(self, name: str, total: int) -> str:
        budget_id = f"bench-{name}-{self.run_id}"
        reply = self.admin.CreateBudget(
            admin_pb2.CreateBudgetRequest(budget_id=budget_id, unit="unit", total=total, actor="bench"),
            timeout=30,
        )
        if reply.code != pb.RESULT_CODE_OK:
            raise RuntimeError(
                f"creating budget {budget_id}: {pb.ResultCode.Name(reply.code)} {reply.message}"
            )
        return budget_id

    def budget_for(self, spec: PathSpec) -> str:
        if spec.server not in (AGENT, CENTER):
            return "echo"
        if spec.key not in self.budgets:
            budget_id = self.create_budget(spec.key.replace(".", "-"), BIG_TOTAL)
            if spec.server == AGENT:
                self.prime(spec, budget_id)
            self.budgets[spec.key] = budget_id
        return self.budgets[spec.key]

    def in_flight(self, spec: PathSpec) -> int:
        """Calls one client process keeps in flight on this path in the closed loop."""
        return self.cfg.batch_concurrency if spec.method == DEDUCT_BATCH else self.cfg.concurrency

    def prime(self, spec: PathSpec, budget_id: str) -> None:
        """Ramp the agent up on the budget before the load starts: a warm-up that is a ramp, not a step.

        The agent learns a budget from its first forwarded deduction and asks the center for a
        slice in the background; until the slice arrives everything is forwarded, and a step to
        full load makes the center answer those forwards too late. So calls of the path's own
        kind go one at a time until the agent holds twice what the load keeps in flight.
        """
        cfg = self.cfg
        batch = cfg.batch if spec.method == DEDUCT_BATCH else 1
        wanted = 2 * batch * cfg.clients * self.in_flight(spec)
        with grpc.insecure_channel(self.stack.agent_target) as channel:
            stub = quota_pb2_grpc.QuotaStub(channel)
            deadline = time.monotonic() + PRIME_TIMEOUT_S
            for n in itertools.count():
                items = [
                    pb.DeductRequest(budget_id=budget_id, request_id=f"prime-{budget_id}-{n}-{i}", amount=1)
                    for i in range(batch)
                ]
                with contextlib.suppress(grpc.RpcError):  # UNAVAILABLE while the center is busy
                    if batch == 1:
                        stub.Deduct(items[0], timeout=10)
                    else:
                        stub.DeductBatch(pb.DeductBatchRequest(items=items), timeout=10)
                if slice_available(self.stack.agent_metrics_url, budget_id) >= wanted:
                    return
                if time.monotonic() > deadline:
                    self.log(f"the agent holds less than {wanted} of {budget_id} after {PRIME_TIMEOUT_S:g}s")
                    return

    def measure(self, spec: PathSpec, mode: str, rate: float = 0.0) -> dict[str, Any]:
        cfg = self.cfg
        n = self.clients.count
        if mode == CLOSED:
            self.log(f"{spec.label}: closed loop, {n}×{self.in_flight(spec)} in flight")
        else:
            self.log(f"{spec.label}: open loop at {rate:,.0f} calls/s")
        budget_id = self.budget_for(spec)
        time.sleep(min(SETTLE_S, cfg.seconds / 4))  # let the servers finish what the last one left behind
        batch = cfg.batch if spec.method == DEDUCT_BATCH else 1
        start_at = time.monotonic() + 0.3
        jobs = [
            Job(
                target=self.target(spec.server),
                method=spec.method,
                budget_id=budget_id,
                prefix=f"{spec.key}-{mode}-{self.run_id}",
                mode=mode,
                start_at=start_at,
                warmup_s=cfg.warmup,
                seconds=cfg.seconds,
                batch=batch,
                concurrency=self.in_flight(spec),
                rate=rate / n,
                phase=i / n,
            )
            for i in range(n)
        ]
        self.clients.start(jobs)
        if spec.server == AGENT:
            begin = start_at + cfg.warmup
            _sleep_until(begin)
            before = scrape(self.stack.agent_metrics_url)
            _sleep_until(begin + cfg.seconds)
            after = scrape(self.stack.agent_metrics_url)
            self.windows.append((f"{spec.key} {mode}", before, after))
        outcome = self.clients.collect()
        if outcome.failure is not None:
            raise RuntimeError(f"{spec.label} ({mode} loop): a client failed: {outcome.failure}")
        result = stats(outcome, cfg.seconds, batch)
        if mode == OPEN:
            result["offered_calls_per_s"] = rate
        if outcome.calls == 0:
            result["failed"] = f"no call answered in the window; errors {dict(outcome.errors)}"
            self.log(f"{spec.label} ({mode} loop): {result['failed']}")
        return result

    def drain(self, agent_rate: float, center_rate: float) -> dict[str, Any]:
        """Spend a small budget to the end through the agent and the center, sampling the holders."""
        cfg = self.cfg
        seconds = cfg.drain_seconds
        # Sized to be spent in about a third of the window at the measured rates: the last units
        # go in central mode, one at a time under the budget's lock, far slower than the rest.
        total = max(1000, int(0.35 * seconds * (agent_rate + center_rate) / 2))
        budget_id = self.create_budget("drain", total)
        start_at = time.monotonic() + 0.5
        servers = [AGENT, CENTER] if self.clients.count > 1 else [AGENT]
        jobs = [
            Job(
                target=self.target(servers[i % len(servers)]),
                method=DEDUCT,
                budget_id=budget_id,
                prefix=f"drain-{self.run_id}",
                mode=CLOSED,
                start_at=start_at,
                warmup_s=0.0,
                seconds=seconds,
                concurrency=cfg.concurrency,
            )
            for i in range(self.clients.count)
        ]
        self.log(
            f"drain: budget {budget_id}, total {total:,}, {seconds:.1f}s through the agent and the center"
        )
        self.clients.start(jobs)
        samples = []
        tick = start_at - SAMPLE_EVERY_S
        end = start_at + seconds + 0.5
        while tick < end:
            _sleep_until(tick)
            audit = self.admin.Audit(admin_pb2.AuditRequest(budget_id=budget_id), timeout=10).budgets[0]
            samples.append(
                {
                    "t": round(time.monotonic() - start_at, 3),
                    "main": audit.main,
                    "available": audit.total - audit.consumed - audit.reserved - audit.in_doubt,
                    "consumed": audit.consumed,
                    "in_flight": audit.in_flight,
                    "in_doubt": audit.in_doubt,
                    "holders": {h.holder: h.balance for h in audit.holders if h.holder != "main"},
                }
            )
            tick += SAMPLE_EVERY_S
            while tick < time.monotonic():  # an audit slower than the period: skip the ticks missed
                tick += SAMPLE_EVERY_S
        outcome = self.clients.collect()
        final = self.admin.Audit(admin_pb2.AuditRequest(budget_id=budget_id), timeout=10)
        b = final.budgets[0]
        drained_at = next((s["t"] for s in samples if s["available"] == 0), None)
        return {
            "budget_id": budget_id,
            "total": total,
            "seconds": seconds,
            "deductions_ok": outcome.items_ok,
            "refused": outcome.items_refused,
            "errors": dict(outcome.errors),
            "consumed": b.consumed,
            "drained": b.consumed == b.total,
            "drained_after_s": drained_at,
            "balanced": final.balanced,
            "mismatches": list(b.mismatches),
            "samples": samples,
        }

    def close(self) -> None:
        self.channel.close()


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run(cfg: Config, log: Progress) -> dict[str, Any]:
    specs = path_specs(cfg.batch)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "seconds": cfg.seconds,
            "warmup_s": cfg.warmup,
            "clients": cfg.clients,
            "concurrency": cfg.concurrency,
            "batch_concurrency": cfg.batch_concurrency,
            "batch": cfg.batch,
            "open_fraction": cfg.open_fraction,
            "pairs": cfg.pairs,
            "drain_seconds": cfg.drain_seconds,
            "cpus": os.cpu_count(),
            "event_loop": cfg.event_loop,
        },
        "client_model": client_model(cfg),
    }
    stack = Stack(log, keep=cfg.keep, event_loop=cfg.event_loop)
    clients: Clients | None = None
    bench: Bench | None = None
    try:
        log(f"starting the servers in {stack.dir}")
        stack.start()
        log(
            "pids: center {}, agent {}, echo {}, echo+EVALSHA {}".format(
                *(stack.pid(n) for n in ("center", "agent", "echo", "echo-evalsha"))
            )
        )
        clients = Clients(cfg.clients)
        bench = Bench(cfg, stack, clients, log)
        paths: dict[str, dict[str, Any]] = {}
        for spec in specs:
            paths[spec.key] = {
                "label": spec.label,
                "server": spec.server,
                "method": spec.method,
                "batch": cfg.batch if spec.method == DEDUCT_BATCH else 1,
                "ceiling": spec.ceiling,
                "target_ratio": spec.target_ratio,
            }
        first = scrape(stack.agent_metrics_url)
        # Each path is measured right after its ceiling, in --pairs pairs of windows (ceiling, path)
        # in turn, so that a ratio compares two windows a few seconds apart on a shared machine and
        # the median pair is kept (a burst of load from elsewhere hits one pair, not the result);
        # the fixed-rate run follows at once, while the agent's slice is still warm.
        by_key = {spec.key: spec for spec in specs}
        latest: dict[str, dict[str, Any]] = {}
        last_closed: str | None = None
        for spec in specs:
            p = paths[spec.key]
            if spec.ceiling is None:
                p["closed"] = latest[spec.key] = bench.measure(spec, CLOSED)
                p["ratio"], p["met"], p["ceiling_deductions_per_s"] = None, None, None
            else:
                pairs: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
                for n in range(cfg.pairs):
                    if n > 0 or last_closed != spec.ceiling:
                        latest[spec.ceiling] = bench.measure(by_key[spec.ceiling], CLOSED)
                        paths[spec.ceiling].setdefault("repeats", []).append(latest[spec.ceiling])
                    ceiling_window = latest[spec.ceiling]
                    window = bench.measure(spec, CLOSED)
                    c = ceiling_window["deductions_per_s"]
                    pairs.append((window["deductions_per_s"] / c if c > 0 else 0.0, window, ceiling_window))
                    last_closed = spec.key
                ranked = sorted(pairs, key=lambda pair: pair[0])
                ratio, p["closed"], kept = ranked[(len(ranked) - 1) // 2]  # the median pair
                latest[spec.key] = p["closed"]
                p["pair_ratios"] = [pair[0] for pair in pairs]
                p["ceiling_deductions_per_s"] = kept["deductions_per_s"]
                p["ratio"] = ratio if kept["deductions_per_s"] > 0 else None
                p["met"] = (
                    None
                    if spec.target_ratio is None or p["ratio"] is None
                    else p["ratio"] >= spec.target_ratio
                )
            last_closed = spec.key
            # The common rate is a fraction of echo's calls/s for the same method; a path that cannot
            # sustain it is offered the same fraction of its own saturation throughput instead (an
            # overloaded open loop measures only its backlog).
            echo = paths["echo.deduct" if spec.method == DEDUCT else "echo.batch"]["closed"]["calls_per_s"]
            common = cfg.open_fraction * echo
            rate = max(1.0, min(common, cfg.open_fraction * p["closed"]["calls_per_s"]))
            p["open"] = bench.measure(spec, OPEN, rate)
            p["open"]["rate_capped"] = rate < common
        last = scrape(stack.agent_metrics_url)
        report["paths"] = paths
        report["center_calls_per_thousand"] = calls_per_thousand(bench.windows, first, last)
        report["targets"] = targets(specs, paths, report["center_calls_per_thousand"])
        report["drain"] = bench.drain(
            paths["agent.deduct"]["closed"]["deductions_per_s"],
            paths["center.deduct"]["closed"]["deductions_per_s"],
        )
    finally:
        if bench is not None:
            bench.close()
        if clients is not None:
            clients.close()
        log("stopping the servers")
        stack.stop()
    return report


def client_model(cfg: Config) -> str:
    return (
        f"{cfg.clients} client processes (multiprocessing, spawn), each one asyncio loop with one grpc.aio "
        f"channel per server; closed loop: {cfg.concurrency} Deduct or {cfg.batch_concurrency} DeductBatch calls "
        f"in flight per process ({cfg.clients}× that in all), latency from each call's start; open loop: calls started "
        f"on a fixed schedule ({cfg.open_fraction:g} × the echo throughput of the same method, split over the "
        "processes) whether or not earlier calls ended, latency from the scheduled start. Each window: "
        f"{cfg.warmup:g} s warm-up, then {cfg.seconds:g} s counted; clients and servers share "
        f"{os.cpu_count()} CPUs."
    )


def calls_per_thousand(
    windows: list[tuple[str, dict[str, float], dict[str, float]]],
    first: dict[str, float],
    last: dict[str, float],
) -> dict[str, Any]:
    zero: dict[str, float] = {"forwarded": 0.0, "refills": 0.0, "served": 0.0}
    summed = dict(zero)
    phases = {}
    for name, before, after in windows:
        phases[name] = per_thousand(before, after)
        for k in after:
            summed[k] = summed.get(k, 0.0) + after[k] - before.get(k, 0.0)
    steady = per_thousand(zero, summed)
    return {
        "per_thousand": steady["per_thousand"],
        "windows": steady,
        "whole_run": per_thousand(first, last),
        "phases": phases,
    }


def targets(specs: list[PathSpec], paths: dict[str, Any], cpt: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        if spec.target_ratio is None or spec.ceiling is None:
            continue
        p = paths[spec.key]
        out.append(
            {
                "name": f"{spec.label} ≥ {spec.target_ratio:g} × {paths[spec.ceiling]['label']}",
                "value": p["ratio"],
                "limit": spec.target_ratio,
                "met": p["met"],
                "deductions_per_s": p["closed"]["deductions_per_s"],
            }
        )
    value = cpt["per_thousand"]
    out.append(
        {
            "name": f"center calls per 1000 agent deductions ≤ {CALLS_PER_THOUSAND_LIMIT:g}",
            "value": value,
            "limit": CALLS_PER_THOUSAND_LIMIT,
            "met": None if value is None else value <= CALLS_PER_THOUSAND_LIMIT,
        }
    )
    return out


# --- output --------------------------------------------------------------------------------------


def _n(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _met(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    paths: dict[str, dict[str, Any]] = report["paths"]
    cfg = report["config"]
    out = [
        f"Saturation: closed loop, {cfg['clients']}×{cfg['concurrency']} Deduct or {cfg['clients']}×"
        f"{cfg['batch_concurrency']} DeductBatch calls in flight, {cfg['seconds']:g} s per path"
    ]
    rows = []
    for p in paths.values():
        c = p["closed"]
        ceiling = (
            f"{paths[p['ceiling']]['label']} {_n(p['ceiling_deductions_per_s'])}/s"
            if p["ceiling"]
            else "(ceiling)"
        )
        target = "-" if p["target_ratio"] is None else f"≥{p['target_ratio']:g} {_met(p['met'])}"
        rows.append(
            [
                p["label"],
                _n(c["calls_per_s"]),
                _n(c["deductions_per_s"]),
                _n(c["p50_ms"], 2),
                _n(c["p99_ms"], 2),
                ceiling,
                _n(p["ratio"], 2),
                target,
                _errors(c),
            ]
        )
    header = [
        "path",
        "calls/s",
        "deductions/s",
        "p50 ms",
        "p99 ms",
        "ceiling (deductions/s)",
        "ratio",
        "target",
        "errors",
    ]
    out.append(_table(header, rows))
    pairs = cfg.get("pairs", 1)
    out.append(
        "ratio: deductions/s of the path over those of its ceiling, measured again just before the path"
        + (
            f"; {pairs} such pairs of windows in turn, the row shows the median pair"
            + "".join(
                f"\n  {p['label']}: pair ratios {', '.join(f'{r:.2f}' for r in p['pair_ratios'])}"
                for p in paths.values()
                if p.get("pair_ratios")
            )
            if pairs > 1
            else ""
        )
    )
    out.append("")
    out.append(
        f"Fixed rate: open loop at {cfg['open_fraction']:g} × the echo calls/s of the same method, "
        "latency from the scheduled start"
    )
    rows = []
    for p in paths.values():
        o = p["open"]
        rows.append(
            [
                p["label"],
                _n(o["offered_calls_per_s"]) + ("*" if o["rate_capped"] else ""),
                _n(o["calls_per_s"]),
                _n(o["deductions_per_s"]),
                _n(o["p50_ms"], 2),
                _n(o["p99_ms"], 2),
                "yes" if o["calls_per_s"] >= 0.95 * o["offered_calls_per_s"] else "NO (latency is queueing)",
                _errors(o),
            ]
        )
    header = ["path", "offered calls/s", "calls/s", "deductions/s", "p50 ms", "p99 ms", "kept up", "errors"]
    out.append(_table(header, rows))
    if any(p["open"]["rate_capped"] for p in paths.values()):
        out.append(
            f"* the path saturates below the common rate: offered {cfg['open_fraction']:g} × its own "
            "closed-loop calls/s instead"
        )
    out.append("")
    cpt = report["center_calls_per_thousand"]
    w, whole = cpt["windows"], cpt["whole_run"]
    out.append(
        f"Center calls per 1000 deductions through the agent: {_n(cpt['per_thousand'], 2)} over the measurement "
        f"windows ({w['forwarded']:.0f} forwarded + {w['refills']:.0f} slice requests for {w['deductions']:,.0f} "
        f"deductions); {_n(whole['per_thousand'], 2)} over the whole run with warm-ups and first contact "
        f"({whole['forwarded']:.0f} + {whole['refills']:.0f} for {whole['deductions']:,.0f})"
    )
    out.append("")
    out.append("Targets")
    rows = []
    for t in report["targets"]:
        extra = f"{t['deductions_per_s']:,.0f} deductions/s" if "deductions_per_s" in t else ""
        rows.append([t["name"], _n(t["value"], 2), _met(t["met"]), extra])
    out.append(_table(["target", "value", "result", ""], rows))
    out.append("")
    d = report["drain"]
    drained = (
        f"drained after {d['drained_after_s']:.1f} s" if d["drained_after_s"] is not None else "not drained"
    )
    out.append(
        f"Drain of {d['budget_id']} (total {d['total']:,}) through the agent and the center: {drained}; "
        f"consumed {d['consumed']:,}, {d['deductions_ok']:,} OK and {d['refused']:,} refused, audit "
        f"{'balanced' if d['balanced'] else 'NOT balanced: ' + '; '.join(d['mismatches'])}"
    )
    out.append("")
    out.append("Notes")
    out.append("* Closed-loop latency at saturation is queueing: the calls in flight wait for each other.")
    out.append(f"* Client model: {report['client_model']}")
    out.append(f"* Servers' event loop: {report['config'].get('event_loop', 'asyncio')}")
    out.append(
        "* Echo answers at once; echo+EVALSHA runs one trivial Lua script per deduction (a DeductBatch's in one"
        " Redis pipeline, as the center does); each is one process with"
        " one asyncio loop and a grpc.aio server, like the agent and the center. PostgreSQL runs with fsync off."
    )
    out.append(
        "* Before its load, each agent budget is ramped up (calls one at a time until the agent holds twice what"
        " the load keeps in flight); a step from nothing to full load is forwarded to the center until the"
        " first slice arrives."
    )
    return "\n".join(out)


def _errors(m: dict[str, Any]) -> str:
    errors: dict[str, int] = m["errors"]
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    cfg = config_from(args, _given(argv))
    if (
        cfg.seconds <= 0
        or cfg.warmup < 0
        or min(cfg.clients, cfg.concurrency, cfg.batch_concurrency, cfg.batch, cfg.pairs) < 1
    ):
        print(
            "bench: --seconds, --clients, --concurrency, --batch-concurrency, --batch and --pairs must be positive",
            file=sys.stderr,
        )
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path: Path = args.json or REPORTS / f"bench-{stamp}.json"
    png_path: Path = args.png or json_path.with_suffix(".png")
    log = Progress()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        report = run(cfg, log)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    from loadtest.bench_chart import write_png

    report["png"] = str(png_path)
    write_png(report, png_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(render(report))
    log(f"wrote {json_path} and {png_path}")
    failed = [
        f"{p['label']} ({mode} loop)"
        for p in report["paths"].values()
        for mode in ("closed", "open")
        if "failed" in p[mode]
    ]
    if failed:
        log(f"no call answered in: {', '.join(failed)}")
        return 1
    if args.fail_on_target and any(t["met"] is False for t in report["targets"]):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
