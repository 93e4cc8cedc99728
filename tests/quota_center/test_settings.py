from __future__ import annotations

from pathlib import Path

import pytest

from quota_center.settings import Settings, SettingsError, describe, load, unknown_variables


def test_defaults_when_nothing_is_set() -> None:
    assert load({}) == Settings()


def test_prefixed_variables_override_and_are_typed() -> None:
    s = load({"QUOTA_CENTER_GRPC_PORT": "7000", "QUOTA_CENTER_LEDGER_BATCH_WAIT_MS": "2.5", "OTHER": "x"})
    assert s.grpc_port == 7000
    assert s.ledger_batch_wait_ms == 2.5


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="QUOTA_CENTER_GRPC_PORT"):
        load({"QUOTA_CENTER_GRPC_PORT": "many"})


def test_help_lists_every_setting_with_its_default() -> None:
    text = describe()
    for name in Settings.__dataclass_fields__:
        assert f"QUOTA_CENTER_{name.upper()}" in text
    assert "(default: 50051)" in text


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"QUOTA_CENTER_LOG_LEVEL": "verbose"}, "QUOTA_CENTER_LOG_LEVEL='verbose' is not one of DEBUG"),
        ({"QUOTA_CENTER_LOG_FORMAT": "xml"}, "QUOTA_CENTER_LOG_FORMAT='xml' is not one of text, json"),
        ({"QUOTA_CENTER_EVENT_LOOP": "trio"}, "QUOTA_CENTER_EVENT_LOOP='trio' is not one of asyncio"),
        ({"QUOTA_CENTER_GRPC_PORT": "70000"}, "QUOTA_CENTER_GRPC_PORT must be a port"),
        ({"QUOTA_CENTER_TOKEN_PORT": "-2"}, "QUOTA_CENTER_TOKEN_PORT must not be below -1"),
        ({"QUOTA_CENTER_DRAIN_GRACE_S": "-1"}, "QUOTA_CENTER_DRAIN_GRACE_S must not be negative"),
        ({"QUOTA_CENTER_SWEEP_INTERVAL_MS": "0"}, "QUOTA_CENTER_SWEEP_INTERVAL_MS must be positive"),
        ({"QUOTA_CENTER_LOG_OK_SAMPLE": "2"}, "QUOTA_CENTER_LOG_OK_SAMPLE must be a fraction"),
        ({"QUOTA_CENTER_WRITEBEHIND_LEASE_MS": "100000"}, "INSTANCE_DEAD_AFTER_MS must exceed"),
    ],
)
def test_a_value_the_center_cannot_run_with_is_one_line_naming_it(
    env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load(env)
    assert complaint in str(err.value)
    assert "\n" not in str(err.value)


def test_a_setting_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://ledger:s3cret@db:5432/quota\n")
    s = load({"QUOTA_CENTER_DATABASE_URL_FILE": str(secret)})
    assert s.database_url == "postgresql://ledger:s3cret@db:5432/quota"  # the final newline dropped
    with pytest.raises(SettingsError, match="QUOTA_CENTER_DATABASE_URL and QUOTA_CENTER_DATABASE_URL_FILE"):
        load({"QUOTA_CENTER_DATABASE_URL_FILE": str(secret), "QUOTA_CENTER_DATABASE_URL": "postgresql://x"})
    with pytest.raises(SettingsError, match=r"QUOTA_CENTER_REDIS_URL_FILE=.*cannot read it"):
        load({"QUOTA_CENTER_REDIS_URL_FILE": str(tmp_path / "missing")})


def test_unknown_variables_are_named_with_the_nearest_setting() -> None:
    warnings = unknown_variables(
        {
            "QUOTA_CENTER_GRPCPORT": "1",
            "QUOTA_CENTER_REDIS_URL_FILE": "/x",  # a setting read from a file: known
            "QUOTA_CENTER_LOG_LEVEL": "INFO",
            "QUOTA_CENTER_SOMETHING_ELSE": "1",
            "REGION_AGENT_GRPCPORT": "1",  # not this process's prefix
        }
    )
    assert warnings == [
        "QUOTA_CENTER_GRPCPORT is not a setting and is ignored (did you mean QUOTA_CENTER_GRPC_PORT?)",
        "QUOTA_CENTER_SOMETHING_ELSE is not a setting and is ignored (`--help` lists the QUOTA_CENTER_* settings)",
    ]
