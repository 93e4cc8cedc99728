"""``quota-center``: the central quota service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from quota_center import settings as settings_mod


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="quota-center",
        description="The central quota service: budgets in PostgreSQL, hot state in Redis, gRPC API.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (environment variables):\n" + settings_mod.describe(),
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve",
        help="run the gRPC server until SIGTERM (then drain)",
        description="Run the gRPC server (Quota, Admin, AgentSession, health, reflection) and the "
        "Prometheus endpoint until SIGTERM or SIGINT, then drain.",
        epilog="settings (environment variables):\n" + settings_mod.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_parser("migrate", help="apply PostgreSQL migrations and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_mod.load()
    except settings_mod.SettingsError as exc:
        print(f"quota-center: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "migrate":
        return asyncio.run(_migrate(settings.database_url))
    from quota_center.server import serve
    from quota_rules import loops

    try:
        loops.loop_factory(settings.event_loop)
    except ValueError as exc:
        print(f"quota-center: QUOTA_CENTER_EVENT_LOOP: {exc}", file=sys.stderr)
        return 2
    try:
        loops.run(serve(settings), settings.event_loop)
    except OSError as exc:
        print(f"quota-center: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _migrate(dsn: str) -> int:
    from quota_center.ledger.store import LedgerStore

    store = await LedgerStore.open(dsn)
    await store.close()
    print("migrations applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
