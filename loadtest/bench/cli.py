"""``python -m loadtest.bench``: the options, and main (run, then write the JSON and the PNG, print)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from loadtest.bench.config import config_from, given_options
from loadtest.bench.report import render
from loadtest.bench.runner import run
from loadtest.bench.servers import REPO_ROOT
from quota_rules.build import add_version
from quota_rules.loops import EVENT_LOOPS

REPORTS = REPO_ROOT / "loadtest" / "reports"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Start Redis, PostgreSQL, the center, three region agents and two echo servers on 127.0.0.1 "
        "(all throwaway, in a temp dir), then measure in one run, for the agent's and the center's Deduct "
        "and DeductBatch and for their ceilings (echo, echo+EVALSHA): throughput at saturation (closed "
        "loop), p50/p99 latency at saturation and at a fixed open-loop rate, the ratio of each path to "
        "its ceiling, center calls per thousand deductions served through the agent, a drain of a "
        "small budget, and a flash sale through the three agents in three phases (serving, end game, "
        "after the sell-out) with the window in which agents still refuse after a return. Prints "
        "tables on stdout (progress on stderr), writes a JSON report and a PNG chart.",
        epilog="Exit status: 0 when every measurement ran (targets met or not, unless --fail-on-target), "
        "1 when a server could not be started or a measurement got no answer at all, 3 with "
        "--fail-on-target when a target is not met.",
    )
    add_version(p)
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
        " --drain-seconds 1.5 --pairs 1 --sale-total 2000 --buyers 24 --sale-seconds 4 --window-trials 3"
        " (explicit options still win)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="closed-loop windows of each compared path and of its ceiling, in turn; the ratio is the"
        " median pair's (default 3)",
    )
    p.add_argument(
        "--sale-total",
        type=int,
        default=20_000,
        help="units of the flash sale, sold through three agents in 1-unit Deducts (default 20000)",
    )
    p.add_argument("--buyers", type=int, default=96, help="closed-loop buyers of the flash sale (default 96)")
    p.add_argument(
        "--sale-seconds",
        type=float,
        default=45.0,
        help="how long the buyers buy: the sale, then the requests after the sell-out, most of a real"
        " sale's (default 45)",
    )
    p.add_argument(
        "--window-trials",
        type=int,
        default=30,
        help="returns at the center after the sell-out, each timed to the agents serving again (default 30)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the servers' logs")
    p.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="asyncio",
        help="event loop of the servers measured: center, agent and echo servers alike (default asyncio)",
    )
    p.add_argument("--fail-on-target", action="store_true", help="exit 3 when a target is not met")
    scale = p.add_argument_group(
        "state that scales",
        "with --budgets, only this is measured (loadtest/bench/scale.py): one stack grown from 10"
        " budgets to --active used ones to N in all (the rest created and never used); at each step the"
        " center's CPU and Redis's commands/s with no traffic and Deduct/s on the used budgets; then"
        " memory per idle budget, ListBudgets page times, a full audit's rate, the bytes a request leaves"
        " in Redis during and after its window and in the spend log, and an agent's memory per request,"
        " with the targets",
    )
    scale.add_argument("--budgets", type=int, metavar="N", help="budgets in all (e.g. 100000)")
    scale.add_argument("--active", type=int, default=500, help="of them in use (default 500)")
    scale.add_argument(
        "--idle-seconds", type=float, default=10.0, help="each no-traffic measurement (default 10)"
    )
    scale.add_argument(
        "--request-window",
        type=int,
        default=10,
        metavar="S",
        help="the center's QUOTA_CENTER_REQUEST_WINDOW_S in this stack, waited out to measure what a"
        " request leaves after it (default 10; the center's own default is 600)",
    )
    return p


def _scale(args: argparse.Namespace) -> int:
    from loadtest.bench import scale

    if (
        not 10 < args.active < args.budgets - 10
        or args.idle_seconds <= 0
        or not 2 <= args.request_window <= 600
    ):
        print(
            "bench: --budgets must exceed --active + 10, --active must exceed 10; --idle-seconds positive;"
            " --request-window 2..600",
            file=sys.stderr,
        )
        return 2
    log = Progress()
    report = _measured(
        lambda: scale.run_scale(
            args.budgets, args.active, args.idle_seconds, log, keep=args.keep, window_s=args.request_window
        ),
        log,
    )
    if isinstance(report, int):
        return report
    json_path: Path = args.json or REPORTS / f"scale-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(scale.render(report))
    log(f"wrote {json_path}")
    if args.fail_on_target and not all(met for *_, met in scale.targets(report)):
        return 3
    return 0


def _measured(measure: Callable[[], dict[str, Any]], log: Progress) -> dict[str, Any] | int:
    """The report, or the exit status: 130 when interrupted (SIGTERM too, so that the throwaway
    servers are stopped on the way out), 1 when a server could not start or a step failed."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return measure()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.budgets is not None:
        return _scale(args)
    cfg = config_from(args, given_options(argv))
    if (
        cfg.seconds <= 0
        or cfg.warmup < 0
        or cfg.sale_seconds <= 0
        or min(cfg.clients, cfg.concurrency, cfg.batch_concurrency, cfg.batch, cfg.pairs) < 1
        or min(cfg.sale_total, cfg.buyers) < 10
        or cfg.window_trials < 0
    ):
        print(
            "bench: --seconds, --sale-seconds, --clients, --concurrency, --batch-concurrency, --batch and"
            " --pairs must be positive, --sale-total and --buyers at least 10, --window-trials 0 or more",
            file=sys.stderr,
        )
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path: Path = args.json or REPORTS / f"bench-{stamp}.json"
    png_path: Path = args.png or json_path.with_suffix(".png")
    log = Progress()
    report = _measured(lambda: run(cfg, log), log)
    if isinstance(report, int):
        return report
    from loadtest.bench.chart import write_png

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
