"""The event-loop setting of the center and the agent (pure)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from quota_rules import loops


def test_asyncio_is_the_standard_loop() -> None:
    assert loops.loop_factory("asyncio") is None
    assert loops.run(asyncio.sleep(0, result=7)) == 7


def test_an_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="asyncio, uvloop"):
        loops.loop_factory("trio")


def test_uvloop_runs_when_installed_and_says_how_to_install_it_otherwise() -> None:
    if importlib.util.find_spec("uvloop") is None:
        with pytest.raises(ValueError, match="pip install uvloop"):
            loops.loop_factory("uvloop")
        return

    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loops.run(kind(), "uvloop").startswith("uvloop")
