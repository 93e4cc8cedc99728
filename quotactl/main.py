"""quotactl: admin command line of the quota center (argparse and dispatch only).

Usage: ``quotactl [--target HOST:PORT] [--json] [--timeout SECONDS] [--actor NAME] [--ca FILE
[--cert FILE --key FILE] [--token-file FILE]] COMMAND ...`` (the global options may also follow
the command). ``--target`` defaults to ``$QUOTACTL_TARGET``, else ``localhost:50051``; ``--actor``
to ``$USER``, else ``quotactl``; the TLS options to ``$QUOTACTL_CA``, ``$QUOTACTL_CERT``,
``$QUOTACTL_KEY`` and ``$QUOTACTL_TOKEN_FILE`` (README, "Security").

Exit codes:

- 0: success (result OK or EXISTS)
- 1: business refusal (any other result code, e.g. INSUFFICIENT, CONFLICT, BUDGET_PAUSED)
- 2: usage or bad input (argument errors, bad amounts, gRPC INVALID_ARGUMENT)
- 3: not found (gRPC NOT_FOUND)
- 4: unavailable or timed out (gRPC UNAVAILABLE, DEADLINE_EXCEEDED, connection refused)
- 5: audit mismatch (``audit`` found the books unbalanced)
- 6: any other gRPC error
- 7: not allowed (gRPC UNAUTHENTICATED or PERMISSION_DENIED)
- 130: interrupted

Responses (refusals included) go to stdout, as text or, with ``--json``, as one JSON
object; errors go to stderr as one line ``quotactl: error: <details>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import grpc

from quota.v1 import admin_pb2_grpc, quota_pb2_grpc
from quota_rules.build import add_version
from quota_rules.limits import MAX_AMOUNT
from quotactl import bulk, commands, connection, parse
from quotactl.exit_codes import EPILOG, ExitCode

PROG = "quotactl"
DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 10.0

Handler = Callable[[commands.Context, argparse.Namespace], commands.Outcome]


def _arg(convert: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` that reports the parser's own message instead of "invalid value"."""

    def wrapped(text: str) -> object:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return wrapped


_amount = _arg(parse.parse_amount)
_budget = _arg(lambda text: parse.parse_name(text, what="budget id"))
_request_id = _arg(parse.parse_request_id)


def _global_options(parser: argparse.ArgumentParser, environ: Mapping[str, str], *, suppress: bool) -> None:
    """The global options, on the top parser (with defaults) and on every subcommand.

    On subcommands the defaults are suppressed so that an option given before the
    command is not reset by the subparser: ``quotactl --json get B`` and
    ``quotactl get B --json`` are the same.
    """
    target = environ.get("QUOTACTL_TARGET") or DEFAULT_TARGET
    actor = environ.get("USER") or PROG

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--target",
        type=_arg(parse.parse_target),
        default=default(target),
        metavar="HOST:PORT",
        help=f"center address (default: $QUOTACTL_TARGET or {DEFAULT_TARGET}; now {target})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object (integers stay integers) instead of text",
    )
    group.add_argument(
        "--timeout",
        type=_arg(parse.parse_timeout),
        default=default(DEFAULT_TIMEOUT),
        metavar="SECONDS",
        help=f"deadline of each RPC (default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--actor",
        type=_arg(lambda text: parse.parse_name(text, what="actor")),
        default=default(actor),
        metavar="NAME",
        help=f"who the audit trail records when the center does not authenticate callers; an authenticated"
        f" caller is recorded as its identity (default: $USER or {PROG}; now {actor})",
    )
    tls = parser.add_argument_group("TLS (README, Security)")
    for option, variable, help_text in _TLS_OPTIONS:
        default_value = environ.get(variable, "") if variable else ""
        shown = f" (default: ${variable})" if variable else ""
        tls.add_argument(
            option,
            default=default(default_value),
            metavar="NAME" if option == "--server-name" else "FILE",
            help=help_text + shown,
        )


# (option, environment variable of its default, help): the files TLS needs (quotactl/connection.py).
_TLS_OPTIONS = (
    ("--ca", "QUOTACTL_CA", "speak TLS, checking the center's certificate against this PEM CA bundle"),
    ("--cert", "QUOTACTL_CERT", "client certificate for mutual TLS; its common name is your identity"),
    ("--key", "QUOTACTL_KEY", "private key of --cert"),
    ("--token-file", "QUOTACTL_TOKEN_FILE", "file holding a bearer token, for a center's token port"),
    ("--server-name", "", "name the center's certificate must carry, if HOST is not it"),
)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Administer the quota center: budgets, spending calls, audits.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, env, suppress=False)
    add_version(parser)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, env, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    def budget_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("budget_id", metavar="BUDGET", type=_budget, help="budget id")

    def reason_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", default="", help="free text recorded in the audit trail")

    # Admin ---------------------------------------------------------------------------------
    p = command("create", commands.create, "create a budget, or every budget of a file")
    p.add_argument("budget_id", metavar="BUDGET", nargs="?", type=_budget, help="budget id")
    p.add_argument("--total", type=_amount, metavar="N", help="total, in minor units (required with BUDGET)")
    p.add_argument(
        "--from-file",
        metavar="PATH",
        help="create every budget of a CSV file (header: budget_id,total[,unit,sub_buckets,min_slice,"
        "max_slice,strategy,valid_from,valid_until,reason]) or JSON Lines file (one object per line,"
        " same fields); '-' reads stdin. The whole file is checked first (a bad row: nothing is"
        " created); then one CreateBudget per budget, with progress on stderr and a summary. A budget"
        " that already exists with the same definition counts as done, so a rerun creates only what"
        " is missing",
    )
    p.add_argument(
        "--format", choices=list(bulk.FORMATS), help="of --from-file (default: from its extension)"
    )
    p.add_argument(
        "--unit",
        default="unit",
        type=_arg(lambda text: parse.parse_name(text, what="unit")),
        metavar="LABEL",
        help="unit label (default: unit)",
    )
    p.add_argument(
        "--valid-from",
        type=_arg(parse.parse_timestamp),
        metavar="ISO8601",
        help="start of the validity window (no offset: UTC)",
    )
    p.add_argument(
        "--valid-until",
        type=_arg(parse.parse_timestamp),
        metavar="ISO8601",
        help="end of the validity window (no offset: UTC)",
    )
    p.add_argument(
        "--sub-buckets",
        type=_arg(
            lambda text: parse.parse_int(text, what="sub-buckets", minimum=1, maximum=parse.MAX_UINT32)
        ),
        metavar="N",
        help="sub-buckets of the center's own path (default: server's)",
    )
    p.add_argument(
        "--min-slice",
        type=_arg(lambda text: parse.parse_amount(text, what="min slice")),
        metavar="N",
        help="smallest slice (default: server's)",
    )
    p.add_argument(
        "--max-slice",
        type=_arg(lambda text: parse.parse_amount(text, what="max slice")),
        metavar="N",
        help="largest slice (default: server's)",
    )
    p.add_argument(
        "--strategy", choices=list(parse.STRATEGIES), help="slicing strategy (default: server's, progressive)"
    )
    reason_arg(p)

    p = command("top-up", commands.top_up, "add to a budget's total")
    budget_arg(p)
    p.add_argument("amount", metavar="AMOUNT", type=_amount, help="amount to add, in minor units")
    p.add_argument("--request-id", type=_request_id, required=True, metavar="ID", help="idempotency key")
    reason_arg(p)

    for name, handler, verb in (
        ("pause", commands.pause, "pause a budget (spending is refused)"),
        ("resume", commands.resume, "resume a paused budget"),
        ("close", commands.close, "close a budget for good"),
    ):
        p = command(name, handler, verb)
        budget_arg(p)
        reason_arg(p)

    p = command("get", commands.get, "show a budget")
    budget_arg(p)

    p = command("list", commands.list_budgets, "list budgets (follows page tokens)")
    p.add_argument("--state", choices=list(parse.STATES), help="only budgets in this state")
    p.add_argument(
        "--limit",
        type=_arg(lambda text: parse.parse_int(text, what="limit", minimum=1, maximum=MAX_AMOUNT)),
        metavar="N",
        help="list at most N budgets (default: all)",
    )

    p = command(
        "audit", commands.audit, "check total = main + held + in flight + reserved + in doubt + consumed"
    )
    p.add_argument("budget_id", metavar="BUDGET", nargs="?", type=_budget, help="budget id (default: all)")
    p.add_argument("--state", choices=list(parse.STATES), help="only budgets in this state (without BUDGET)")
    p.add_argument(
        "--after",
        type=_budget,
        metavar="BUDGET",
        help="start after this budget id, in id order (without BUDGET): where an earlier run stopped",
    )
    p.add_argument(
        "--limit",
        type=_arg(lambda text: parse.parse_int(text, what="limit", minimum=1, maximum=MAX_AMOUNT)),
        metavar="N",
        help="audit at most N budgets (without BUDGET; default: all). Without --json each budget is"
        " printed as soon as its page is audited, the verdict last; progress goes to stderr",
    )

    p = command("settle", commands.settle, "resolve a holder's in-doubt amount")
    budget_arg(p)
    p.add_argument(
        "holder",
        metavar="HOLDER",
        type=_arg(lambda text: parse.parse_name(text, what="holder")),
        help='holder, e.g. "sub:3" or "agent:eu-1"',
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--consumed",
        type=_arg(lambda text: parse.parse_non_negative(text, what="consumed")),
        metavar="N",
        help="how much of the in-doubt amount the holder really consumed",
    )
    how.add_argument(
        "--show",
        action="store_true",
        help="change nothing: show what the ledger and the spend log know about the holder, and the"
        " bounds on N",
    )
    reason_arg(p)

    # Quota ---------------------------------------------------------------------------------
    p = command("deduct", commands.deduct, "deduct an amount")
    budget_arg(p)
    p.add_argument("amount", metavar="AMOUNT", type=_amount, help="amount, in minor units")
    p.add_argument(
        "--request-id", type=_request_id, metavar="ID", help="idempotency key (default: a new uuid4)"
    )

    p = command("return", commands.return_, "refund part or all of a deduction")
    budget_arg(p)
    p.add_argument("amount", metavar="AMOUNT", type=_amount, help="amount, in minor units")
    p.add_argument(
        "--deduction-id", type=_request_id, required=True, metavar="ID", help="request id of the deduction"
    )
    p.add_argument(
        "--request-id", type=_request_id, metavar="ID", help="idempotency key (default: a new uuid4)"
    )

    p = command("reserve", commands.reserve, "reserve an amount (confirm or cancel it later)")
    budget_arg(p)
    p.add_argument("amount", metavar="AMOUNT", type=_amount, help="amount, in minor units")
    p.add_argument(
        "--ttl-ms",
        type=_arg(lambda text: parse.parse_non_negative(text, what="ttl")),
        default=0,
        metavar="N",
        help="time to live in milliseconds (default: server's)",
    )
    p.add_argument(
        "--request-id",
        type=_request_id,
        metavar="ID",
        help="idempotency key, also the reservation id (default: a new uuid4)",
    )

    p = command("confirm", commands.confirm, "take a reserved amount (the rest is released)")
    budget_arg(p)
    p.add_argument(
        "reservation_id", metavar="RESERVATION_ID", type=_request_id, help="the reserve's request id"
    )
    p.add_argument("amount", metavar="AMOUNT", type=_amount, help="amount to take, at most the reserved one")

    p = command("cancel", commands.cancel, "release a reservation")
    budget_arg(p)
    p.add_argument(
        "reservation_id", metavar="RESERVATION_ID", type=_request_id, help="the reserve's request id"
    )

    p = command("balance", commands.balance, "show what can still be spent")
    budget_arg(p)
    return parser


def _print(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # The reader went away (`quotactl audit | head`): stop the work, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise commands.CtlError("stdout was closed; stopped", ExitCode.INTERRUPTED) from None


def _progress(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE
    handler: Handler = args.handler
    try:
        # A local subchannel pool: closing the channel closes its connection (the process-wide
        # pool would keep it, and log the server's GOAWAY, when main() runs in-process).
        options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
        credentials = connection.credentials(args.ca, args.cert, args.key, args.token_file)
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        with (
            grpc.insecure_channel(args.target, options=options)
            if credentials is None
            else grpc.secure_channel(args.target, credentials, options=options)
        ) as channel:
            ctx = commands.Context(
                admin=admin_pb2_grpc.AdminStub(channel),
                quota=quota_pb2_grpc.QuotaStub(channel),
                timeout=args.timeout,
                actor=args.actor,
                stream=commands.silent if args.json else _print,
                progress=_progress,
            )
            outcome = handler(ctx, args)
    except commands.CtlError as error:
        _error(error.message)
        return error.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as error:  # never a traceback: report it on one line
        _error(f"unexpected {type(error).__name__}: {' '.join(str(error).split())}")
        return ExitCode.ERROR
    try:
        print(json.dumps(outcome.payload) if args.json else outcome.text, flush=True)
    except BrokenPipeError:
        # The reader went away (`quotactl ... | head`): not an error of the command. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
