"""quotactl's argument handling, help and exit codes that need no server."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from quota.v1 import common_pb2
from quotactl import exit_codes, main
from quotactl.exit_codes import ExitCode
from tests.helpers.fake_center import SUBCOMMANDS, Run

UNREACHABLE = "127.0.0.1:1"


def test_help_lists_every_subcommand_and_exit_code(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == 0
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in out, name
    for exit_code in ExitCode:
        assert f"\n  {exit_code.value} " in out, exit_code


def test_exit_codes_are_documented_in_the_module_docstrings() -> None:
    for doc in (main.__doc__, exit_codes.__doc__):
        assert doc is not None
        for exit_code in ExitCode:
            assert str(exit_code.value) in doc


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(run: Run, name: str) -> None:
    code, out, _ = run(name, "--help")
    assert code == 0
    assert out.startswith(f"usage: quotactl {name} ")
    assert "--json" in out  # global options are accepted after the command too
    assert "exit codes:" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["deduct", "b1", "-5"],
        ["deduct", "b1", "1.5"],
        ["deduct", "b1", "1e3"],
        ["deduct", "b1", "0"],
        ["deduct", "b1", "9007199254740992"],
        ["deduct", "b1", "5", "--request-id", "x" * 129],
        ["deduct", "", "5"],
        ["deduct", "b1"],
        ["create", "b1"],
        ["create", "b1", "--total", "10.00"],
        ["create", "b1", "--total", "5", "--strategy", "greedy"],
        ["create", "b1", "--total", "5", "--valid-from", "next tuesday"],
        ["create", "b1", "--total", "5", "--sub-buckets", "0"],
        ["top-up", "b1", "-1", "--request-id", "t"],
        ["settle", "b1", "sub:1", "--consumed", "-1"],
        ["reserve", "b1", "5", "--ttl-ms", "1.5"],
        ["confirm", "b1", "res1", "0"],
        ["list", "--state", "open"],
        ["list", "--limit", "0"],
        ["--timeout", "0", "get", "b1"],
        ["--timeout", "soon", "get", "b1"],
        ["--target", "", "get", "b1"],
    ],
)
def test_usage_errors_exit_2_without_calling(run: Run, argv: list[str]) -> None:
    # The unreachable target proves no call was tried: that would be exit 4.
    code, out, err = run("--target", UNREACHABLE, *argv) if "--target" not in argv else run(*argv)
    assert code == 2
    assert out == ""
    assert "error:" in err
    assert "Traceback" not in err


def test_bad_amount_message_is_clear(run: Run) -> None:
    _, _, err = run("--target", UNREACHABLE, "deduct", "b1", "1.5")
    assert err.splitlines()[-1] == (
        "quotactl deduct: error: argument AMOUNT: amount must be a whole number "
        "(digits only: no sign, decimals or exponent), got '1.5'"
    )


@pytest.mark.parametrize(
    "argv", [["get", "b1"], ["deduct", "b1", "5"], ["audit"], ["list"], ["balance", "b1"]]
)
def test_unreachable_target_is_exit_4(run: Run, argv: list[str]) -> None:
    code, out, err = run("--target", UNREACHABLE, "--timeout", "5", *argv)
    assert code == 4
    assert out == ""
    assert err.startswith("quotactl: error: ")
    assert err.count("\n") == 1


def test_defaults_come_from_the_environment() -> None:
    args = main.build_parser({"QUOTACTL_TARGET": "center:7000", "USER": "alice"}).parse_args(["get", "b1"])
    assert (args.target, args.actor, args.timeout, args.json) == ("center:7000", "alice", 10.0, False)
    args = main.build_parser({}).parse_args(["get", "b1"])
    assert (args.target, args.actor) == ("localhost:50051", "quotactl")


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--target", "t:1", "--timeout", "2.5", "--actor", "ops", "get", "b1"],
        ["get", "b1", "--json", "--target", "t:1", "--timeout", "2.5", "--actor", "ops"],
        ["--target", "t:1", "--actor", "ops", "get", "--json", "b1", "--timeout", "2.5"],
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = main.build_parser({"QUOTACTL_TARGET": "env:1", "USER": "env"}).parse_args(argv)
    assert (args.target, args.actor, args.timeout, args.json, args.budget_id) == (
        "t:1",
        "ops",
        2.5,
        True,
        "b1",
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (common_pb2.RESULT_CODE_OK, ExitCode.OK),
        (common_pb2.RESULT_CODE_EXISTS, ExitCode.OK),
        (common_pb2.RESULT_CODE_INSUFFICIENT, ExitCode.REFUSED),
        (common_pb2.RESULT_CODE_CONFLICT, ExitCode.REFUSED),
        (common_pb2.RESULT_CODE_BUDGET_PAUSED, ExitCode.REFUSED),
        (common_pb2.RESULT_CODE_UNSPECIFIED, ExitCode.REFUSED),
        (42, ExitCode.REFUSED),
    ],
)
def test_exit_code_for_result(code: int, expected: ExitCode) -> None:
    assert exit_codes.for_result(code) == expected


def test_exit_code_for_unset_result_on_reads() -> None:
    assert exit_codes.for_result(common_pb2.RESULT_CODE_UNSPECIFIED, unset_is_ok=True) == ExitCode.OK
    assert exit_codes.for_result(common_pb2.RESULT_CODE_CONFLICT, unset_is_ok=True) == ExitCode.REFUSED


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
        (grpc.StatusCode.NOT_FOUND, ExitCode.NOT_FOUND),
        (grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, ExitCode.ERROR),
        (grpc.StatusCode.UNKNOWN, ExitCode.ERROR),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ExitCode.ERROR),
        (grpc.StatusCode.UNIMPLEMENTED, ExitCode.ERROR),
    ],
)
def test_exit_code_for_status(status: grpc.StatusCode, expected: ExitCode) -> None:
    assert exit_codes.for_status(status) == expected


def test_real_process_unreachable_and_bad_amount() -> None:
    """The module entry point, as a separate process: exit codes and one-line errors."""
    base = [sys.executable, "-m", "quotactl.main", "--target", UNREACHABLE, "--timeout", "5"]
    done = subprocess.run([*base, "get", "b1"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.startswith("quotactl: error: ")
    assert done.stderr.count("\n") == 1

    done = subprocess.run(
        [*base, "deduct", "b1", "-5"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "amount must not be negative" in done.stderr
