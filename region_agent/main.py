"""``region-agent``: the regional quota agent process."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from quota_rules.build import add_version
from quota_rules.logs import configure
from region_agent import settings as settings_mod

# The cyclic garbage collector's thresholds for the agent process. The agent keeps up to
# REGION_AGENT_MAX_RECORDS request records (a million by default), one tracked object each, and
# a full collection walks them all: about 100 ms at a million. Python's defaults (700, 10, 10)
# ran one every quarter million new records, every 1.3 s under DeductBatch load (a sixth of
# the time, and the p99); these run the young collections ten times less often and the full
# ones only after a hundred middle ones, so a full collection comes every few million
# allocations. Records are freed by reference counting when dropped, whatever the collector does.
GC_THRESHOLDS = (7000, 10, 100)


def parser() -> argparse.ArgumentParser:
    epilog = "settings (environment variables):\n" + settings_mod.describe()
    p = argparse.ArgumentParser(
        prog="region-agent",
        description="Regional quota agent: serves Deduct, Return, Reserve, Confirm, Cancel, DeductBatch and "
        "GetBalance from slices of budgets held in memory, and forwards what they cannot serve to the center.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve",
        help="run the agent until SIGTERM (then drain)",
        description="Run the gRPC server (Quota, health, reflection) and the Prometheus endpoint, keep a "
        "session with the center, until SIGTERM or SIGINT, then drain.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser().parse_args(argv)
    try:
        settings = settings_mod.load()
    except settings_mod.SettingsError as exc:
        print(f"region-agent: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_format, component="agent")
    for warning in settings_mod.unknown_variables():
        logging.getLogger("region_agent").warning(warning)
    from quota_rules import loops
    from region_agent.server import serve
    from region_agent.storage.journal import JournalError

    try:
        loops.loop_factory(settings.event_loop)
    except ValueError as exc:
        print(f"region-agent: REGION_AGENT_EVENT_LOOP: {exc}", file=sys.stderr)
        return 2
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        loops.run(serve(settings), settings.event_loop)
    except settings_mod.SettingsError as exc:
        print(f"region-agent: {exc}", file=sys.stderr)
        return 2
    except JournalError as exc:
        print(f"region-agent: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"region-agent: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
