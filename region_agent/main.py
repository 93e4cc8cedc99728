"""``region-agent``: the regional agent process.

This version of the product ships the center only; the agent's serving loop (slices
in memory, leases, the session stream to the center) is not part of it yet, so
``serve`` says so and exits with status 2 instead of pretending to run.
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="region-agent",
        description="Regional quota agent: serves Deduct/Return from slices of budgets held in memory. "
        "Not available in this version: use the center's Quota service directly.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the agent (not available in this version)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser().parse_args(argv)
    print(
        "region-agent: the agent is not available in this version; call the center directly", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
