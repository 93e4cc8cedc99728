"""``python -m devstack``: start throwaway servers for a session by hand, or the kept local stack.

``up`` is the load tests' stack kept until Ctrl-C (point Locust or a debugger at it); ``certs``
makes the files of a local stack with mutual TLS;
``services``, ``stop`` and ``clean`` are what scripts/run-stack.sh (``make run``) does with
Redis and PostgreSQL. Settings come from options, their defaults from the environment mapping
passed in (tests pass a dict).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import FrameType

from .certs import local_tls
from .errors import StackError
from .local import LocalStack, clean, start_services, stop_services
from .stack import REGIONS, Stack

_LOCAL_ENV = """\
environment (defaults of the options):
  STACK_DIR          --dir (default: .stack in the current directory)
  STACK_REDIS_PORT   --redis-port (default: 6390)
  STACK_PG_PORT      --pg-port (default: 5440)
  QUOTA_CENTER_REDIS_URL, QUOTA_CENTER_DATABASE_URL
                     services: when set, that server is used and none is started"""


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Start Redis, PostgreSQL, the quota center and region agents on 127.0.0.1, "
        "and stop them. 'up' runs a throwaway stack until Ctrl-C; 'services', 'stop' and 'clean' "
        "manage the kept Redis and PostgreSQL of scripts/run-stack.sh (make run).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_LOCAL_ENV,
    )
    # The project's version as installed (devstack needs no other package of the project).
    p.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {metadata.version('quota-center')} (Python {platform.python_version()})",
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="throwaway Redis, PostgreSQL, a center and agents until Ctrl-C or SIGTERM",
        description="Start Redis and PostgreSQL in temp dirs, quota-center serve and one region-agent "
        f"serve per region ({', '.join(REGIONS)}: ids eu-1, ...), each on free 127.0.0.1 ports; print "
        'one JSON line {"center": ..., "agents": [...], "logs": ..., ...} on stdout; keep them until '
        "Ctrl-C or SIGTERM, then stop them and remove the temp dirs (the logs stay). Progress on stderr.",
    )
    up.add_argument(
        "--agents",
        type=int,
        default=len(REGIONS),
        choices=range(len(REGIONS) + 1),
        help=f"how many agents (default: {len(REGIONS)})",
    )
    up.add_argument("--log-dir", type=Path, help="where the servers log (default: a new temp dir)")

    certs = commands.add_parser(
        "certs",
        help="make (or reuse) a throwaway CA, certificates and an access file for a local stack with mutual TLS",
        description="Write to DIR/pki a CA (ca.crt), the server's certificate for 127.0.0.1 and localhost "
        "(server.crt), the client certificate of identity 'admin' (admin.crt) and an access file granting it "
        "every role (access.toml); files that exist are kept. Prints the export lines of the center's TLS "
        "settings and of quotactl's (QUOTACTL_CA, _CERT, _KEY). For development only: the keys are not "
        "protected (README, Security).",
    )
    certs.add_argument("--dir", type=Path, default=Path(env.get("STACK_DIR") or ".stack"))

    for name, summary in (
        ("services", "start (or reuse) the kept Redis and PostgreSQL and print the export lines for them"),
        ("stop", "stop the kept Redis and PostgreSQL this directory's pid files name (data is kept)"),
        ("clean", "stop them and delete their directory with its data"),
    ):
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}. Redis keeps an append-only file in DIR/redis, "
            "PostgreSQL its cluster in DIR/postgres (database quota_center); both listen on 127.0.0.1 only "
            "and outlive this command. A server already answering on a port is reused.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=_LOCAL_ENV,
        )
        sub.add_argument("--dir", type=Path, default=Path(env.get("STACK_DIR") or ".stack"))
        sub.add_argument("--redis-port", type=int, default=int(env.get("STACK_REDIS_PORT") or 6390))
        sub.add_argument("--pg-port", type=int, default=int(env.get("STACK_PG_PORT") or 5440))
    return p


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = parser(env).parse_args(argv)
    try:
        if args.command == "up":
            return _up(args.agents, args.log_dir)
        if args.command == "certs":
            made = local_tls(args.dir.resolve() / "pki")
            exports = {
                **made.center_env(),
                "QUOTACTL_CA": str(made.ca),
                "QUOTACTL_CERT": str(made.admin.cert),
                "QUOTACTL_KEY": str(made.admin.key),
            }
            for name, value in exports.items():
                print(f"export {name}={shlex.quote(value)}", flush=True)
            return 0
        local = LocalStack(args.dir.resolve(), redis_port=args.redis_port, pg_port=args.pg_port)
        if args.command == "services":
            for name, value in start_services(local, env, _say).items():
                print(f"export {name}={shlex.quote(value)}", flush=True)
        elif args.command == "stop":
            stop_services(local, _say)
        else:
            clean(local, _say)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _say(line: str) -> None:
    print(f"==> {line}", file=sys.stderr, flush=True)


def _up(agents: int, log_dir: Path | None) -> int:
    logs = log_dir or Path(tempfile.mkdtemp(prefix="qc-devstack-logs-"))

    def progress(line: str) -> None:
        print(f"devstack: {line}", file=sys.stderr, flush=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # leave the with-block: the stack stops in order

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with Stack(regions=REGIONS[:agents], log_dir=logs, progress=progress) as stack:
            targets = {
                "center": stack.center,
                "agents": stack.agents,
                "logs": str(logs),
                "redis_url": stack.redis_url,
                "database_url": stack.database_url,
                "center_metrics": stack.center_metrics,
                "agent_metrics": stack.agent_metrics,
            }
            print(json.dumps(targets), flush=True)
            progress("running; Ctrl-C or SIGTERM stops it")
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 0
