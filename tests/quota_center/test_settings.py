from __future__ import annotations

import pytest

from quota_center.settings import Settings, SettingsError, describe, load


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
