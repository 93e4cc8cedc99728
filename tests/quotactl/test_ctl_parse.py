"""Table tests of quotactl.parse (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from quotactl import parse

MAX = 2**53 - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("5", 5),
        ("10000", 10_000),
        ("007", 7),
        (str(MAX), MAX),
        ("0" * 40 + "12", 12),
    ],
)
def test_parse_amount_accepts_whole_positive_numbers(text: str, expected: int) -> None:
    value = parse.parse_amount(text)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "at least 1"),
        ("000", "at least 1"),
        ("-5", "must not be negative"),
        ("-0", "must not be negative"),
        ("1.5", "whole number"),
        ("1.0", "whole number"),
        ("1e3", "whole number"),
        ("1E3", "whole number"),
        ("+5", "whole number"),
        ("-1.5", "whole number"),
        ("", "whole number"),
        (" 5", "whole number"),
        ("5 ", "whole number"),
        ("1_000", "whole number"),
        ("0x10", "whole number"),
        ("٣", "whole number"),  # Arabic-Indic digit: int() would accept it
        ("inf", "whole number"),
        ("nan", "whole number"),
        ("5\n", "whole number"),
        (str(MAX + 1), "at most 9007199254740991"),
        ("9" * 5000, "at most 9007199254740991"),  # beyond int()'s digit limit: still a clear message
    ],
)
def test_parse_amount_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse.parse_amount(text)
    assert str(info.value).startswith("amount ")


def test_parse_amount_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"^min slice must be at least 1, got 0$"):
        parse.parse_amount("0", what="min slice")


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "expected"),
    [
        ("0", 0, 10, 0),
        ("10", 0, 10, 10),
        ("4294967295", 1, 2**32 - 1, 2**32 - 1),
    ],
)
def test_parse_int_bounds_inclusive(text: str, minimum: int, maximum: int, expected: int) -> None:
    assert parse.parse_int(text, what="n", minimum=minimum, maximum=maximum) == expected


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "message"),
    [
        ("11", 0, 10, "n must be at most 10, got 11"),
        ("0", 1, 10, "n must be at least 1, got 0"),
        ("4294967296", 1, 2**32 - 1, "at most 4294967295"),
    ],
)
def test_parse_int_out_of_bounds(text: str, minimum: int, maximum: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse.parse_int(text, what="n", minimum=minimum, maximum=maximum)


def test_parse_non_negative_allows_zero() -> None:
    assert parse.parse_non_negative("0", what="consumed") == 0
    with pytest.raises(ValueError, match="consumed must not be negative"):
        parse.parse_non_negative("-1", what="consumed")


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        ("1970-01-01T00:00:00Z", 0, 0),
        ("2025-01-01T00:00:00Z", 1_735_689_600, 0),
        ("2025-01-01T00:00:00+00:00", 1_735_689_600, 0),
        ("2025-01-01T02:00:00+02:00", 1_735_689_600, 0),
        ("2024-12-31T19:00:00-05:00", 1_735_689_600, 0),
        ("2025-01-01", 1_735_689_600, 0),  # date only: midnight UTC
        ("2025-01-01T00:00:00", 1_735_689_600, 0),  # no offset: UTC
        ("2025-01-01 00:00:00Z", 1_735_689_600, 0),
        ("2025-01-01T00:00:00.5Z", 1_735_689_600, 500_000_000),
        ("2025-01-01T00:00:00.123456Z", 1_735_689_600, 123_456_000),
        ("  2025-01-01T00:00:00Z ", 1_735_689_600, 0),
        ("1969-12-31T23:59:59.25Z", -1, 250_000_000),  # canonical form: nanos never negative
    ],
)
def test_parse_timestamp(text: str, seconds: int, nanos: int) -> None:
    assert parse.parse_timestamp(text) == Timestamp(seconds=seconds, nanos=nanos)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2025-13-01", "2025-01-01T25:00:00Z", "1735689600", "01/02/2025"]
)
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected an ISO 8601 time"):
        parse.parse_timestamp(text)


def test_datetime_to_timestamp_is_exact_and_needs_a_zone() -> None:
    moment = datetime(2030, 6, 15, 12, 30, 45, 999_999, tzinfo=timezone(timedelta(hours=-7)))
    ts = parse.datetime_to_timestamp(moment)
    assert ts.ToDatetime(tzinfo=UTC) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        parse.datetime_to_timestamp(datetime(2030, 1, 1))  # a naive datetime: the point of the test


@pytest.mark.parametrize(("text", "expected"), [("10", 10.0), ("0.25", 0.25), ("3", 3.0), ("1e1", 10.0)])
def test_parse_timeout(text: str, expected: float) -> None:
    assert parse.parse_timeout(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "soon", ""])
def test_parse_timeout_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        parse.parse_timeout(text)


@pytest.mark.parametrize("text", ["r1", "x" * 128, "é" * 64, "5b0c1c4e-52d1-4d0c-9f2f-6c1d8a9d2a10"])
def test_parse_request_id_accepts(text: str) -> None:
    assert parse.parse_request_id(text) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 129, "at most 128 bytes"),
        ("é" * 65, "got 130"),
    ],
)
def test_parse_request_id_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse.parse_request_id(text)


def test_parse_name() -> None:
    assert parse.parse_name("eu budget", what="budget id") == "eu budget"
    with pytest.raises(ValueError, match=r"^budget id must not be empty$"):
        parse.parse_name("", what="budget id")


@pytest.mark.parametrize("text", ["localhost:50051", "127.0.0.1:1", "dns:///center:443", "[::1]:50051"])
def test_parse_target(text: str) -> None:
    assert parse.parse_target(text) == text


@pytest.mark.parametrize("text", ["", "local host:1", "host:1\n"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse.parse_target(text)


def test_choice_tables_cover_the_enums() -> None:
    assert set(parse.STATES) == {"active", "paused", "closed"}
    assert set(parse.STRATEGIES) == {"progressive", "static", "central"}
    assert 0 not in parse.STATES.values()
    assert 0 not in parse.STRATEGIES.values()
