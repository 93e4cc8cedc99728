"""The run's settings, from the command line, with ``--tiny``'s small sizes where none was given."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any


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
    sale_total: int = 20_000
    buyers: int = 96
    sale_seconds: float = 45.0
    window_trials: int = 30


def config_from(args: argparse.Namespace, given: set[str]) -> Config:
    tiny = {
        "seconds": 0.5,
        "warmup": 0.3,
        "concurrency": 8,
        "batch_concurrency": 2,
        "batch": 20,
        "drain_seconds": 1.5,
        "pairs": 1,
        "sale_total": 2_000,
        "buyers": 24,
        "sale_seconds": 4.0,
        "window_trials": 3,
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
        sale_total=int(pick("sale_total")),
        buyers=int(pick("buyers")),
        sale_seconds=float(pick("sale_seconds")),
        window_trials=int(pick("window_trials")),
    )


def given_options(argv: list[str]) -> set[str]:
    """The option names the command line set (so that --tiny does not override them)."""
    names = set()
    for arg in argv:
        if arg.startswith("--"):
            names.add(arg[2:].split("=", 1)[0].replace("-", "_"))
    return names
