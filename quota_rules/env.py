"""Settings dataclasses read from prefixed environment variables (shared by the center and the agent).

One settings object per process; a test passes a dict instead of ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar


class SettingsError(ValueError):
    """A variable has a value the process cannot run with; the message names it."""


T = TypeVar("T")


def from_env(cls: type[T], prefix: str, env: Mapping[str, str] | None = None) -> T:
    """A settings dataclass from ``PREFIX_FIELD`` variables, each read as its default's type.

    SettingsError names a value of the wrong type.
    """
    source = os.environ if env is None else env
    defaults = cls()
    values: dict[str, object] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        raw = source.get(prefix + f.name.upper())
        if raw is None:
            continue
        kind = type(getattr(defaults, f.name))
        try:
            values[f.name] = kind(raw)
        except ValueError:
            raise SettingsError(f"{prefix}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
    return cls(**values)


def describe_env(cls: type[Any], prefix: str, help: Mapping[str, str], required: Sequence[str] = ()) -> str:
    """One line per variable: name, help and default (or "required"), for ``--help``."""
    defaults = cls()
    lines = []
    for f in fields(cls):
        shown = "required" if f.name in required else f"default: {getattr(defaults, f.name)}"
        lines.append(f"  {prefix + f.name.upper():<36} {help[f.name]} ({shown})")
    return "\n".join(lines)
