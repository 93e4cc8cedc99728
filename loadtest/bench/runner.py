"""The run: the servers up, every path measured in pairs with its ceiling, the drain, the report."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loadtest.bench.agent_metrics import calls_per_thousand, scrape
from loadtest.bench.client import CLOSED, DEDUCT, DEDUCT_BATCH, OPEN, Clients
from loadtest.bench.config import Config
from loadtest.bench.drain import drain
from loadtest.bench.flash import flash_sale
from loadtest.bench.measure import Bench
from loadtest.bench.paths import path_specs, targets
from loadtest.bench.servers import Servers


def run(cfg: Config, log: Callable[[str], None]) -> dict[str, Any]:
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
            "sale_total": cfg.sale_total,
            "buyers": cfg.buyers,
            "sale_seconds": cfg.sale_seconds,
            "window_trials": cfg.window_trials,
        },
        "client_model": client_model(cfg),
    }
    servers = Servers(log, keep=cfg.keep, event_loop=cfg.event_loop)
    clients: Clients | None = None
    bench: Bench | None = None
    try:
        log(f"starting the servers in {servers.dir}")
        servers.start()
        log(
            "pids: center {}, agent {}, echo {}, echo+EVALSHA {}".format(
                *(servers.pid(n) for n in ("center", "agent", "echo", "echo-evalsha"))
            )
        )
        clients = Clients(cfg.clients)
        bench = Bench(cfg, servers, clients, log)
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
        first = scrape(servers.agent_metrics_url)
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
        last = scrape(servers.agent_metrics_url)
        report["paths"] = paths
        report["center_calls_per_thousand"] = calls_per_thousand(bench.windows, first, last)
        report["targets"] = targets(specs, paths, report["center_calls_per_thousand"])
        report["drain"] = drain(
            bench,
            paths["agent.deduct"]["closed"]["deductions_per_s"],
            paths["center.deduct"]["closed"]["deductions_per_s"],
        )
        report["flash_sale"] = flash_sale(
            clients,
            servers.center_target,
            servers.center_metrics_url,
            servers.agent_targets,
            servers.agent_metrics_urls,
            total=cfg.sale_total,
            buyers=cfg.buyers,
            seconds=cfg.sale_seconds,
            trials=cfg.window_trials,
            log=log,
        )
    finally:
        if bench is not None:
            bench.close()
        if clients is not None:
            clients.close()
        log("stopping the servers")
        servers.stop()
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
