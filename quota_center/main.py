"""``quota-center``: the central quota service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from quota_center import settings as settings_mod
from quota_rules.build import add_version
from quota_rules.logs import configure


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="quota-center",
        description="The central quota service: budgets in PostgreSQL, hot state in Redis, gRPC API.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (environment variables):\n" + settings_mod.describe(),
    )
    add_version(p)
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
    token = sub.add_parser(
        "token",
        help="make a bearer token for an identity, and the access file line that grants it",
        description="Print a new random bearer token on stdout and, on stderr, the line of the access "
        "file's [tokens] section that maps its SHA-256 to IDENTITY (the file never holds the token). "
        "Give the token to its holder (quotactl --token-file); callers present it on the center's token "
        "port (README, Security).",
    )
    token.add_argument("identity", help="the identity the token stands for, as named in [identities]")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "token":
        return _token(args.identity)
    try:
        settings = settings_mod.load()
    except settings_mod.SettingsError as exc:
        print(f"quota-center: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_format, component="center")
    for warning in settings_mod.unknown_variables():
        logging.getLogger("quota_center").warning(warning)
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
    except settings_mod.SettingsError as exc:
        print(f"quota-center: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"quota-center: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _token(identity: str) -> int:
    import secrets

    from quota_rules.access import token_digest

    token = secrets.token_urlsafe(32)
    print(token, flush=True)
    print(
        f'add to the access file\'s [tokens] section:\n"{token_digest(token)}" = "{identity}"',
        file=sys.stderr,
    )
    return 0


async def _migrate(dsn: str) -> int:
    from quota_center.ledger.store import LedgerStore

    store = await LedgerStore.open(dsn)
    await store.close()
    print("migrations applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
