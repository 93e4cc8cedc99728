"""Settings dataclasses read from prefixed environment variables (shared by the center and the agent).

One settings object per process; a test passes a dict instead of ``os.environ``. Any setting may
instead be read from a file named by ``<VARIABLE>_FILE`` (a mounted Kubernetes Secret, say): the
file's content, without its final newline, is the value. Variables with the prefix that name no
setting are reported (``unknown``), so a misspelt setting is not ignored silently.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from quota_rules.logs import FORMATS, LEVELS


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
        name = prefix + f.name.upper()
        raw = source.get(name)
        path = source.get(name + "_FILE")
        if path is not None:
            if raw is not None:
                raise SettingsError(f"{name} and {name}_FILE are both set: set one of them")
            raw = _read_file(name + "_FILE", path)
        if raw is None:
            continue
        kind = type(getattr(defaults, f.name))
        try:
            values[f.name] = kind(raw)
        except ValueError:
            raise SettingsError(f"{prefix}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
    return cls(**values)


def _read_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"{variable}={path!r}: cannot read it ({exc.__class__.__name__}: {exc})"
        ) from None


def unknown(cls: type[Any], prefix: str, env: Mapping[str, str] | None = None) -> list[str]:
    """One warning for each ``PREFIX_*`` variable that names no setting, with the nearest setting."""
    source = os.environ if env is None else env
    names = [prefix + f.name.upper() for f in fields(cls)]
    known = set(names) | {n + "_FILE" for n in names}
    warnings = []
    for name in sorted(n for n in source if n.startswith(prefix) and n not in known):
        guess = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
        hint = f" (did you mean {guess[0]}?)" if guess else f" (`--help` lists the {prefix}* settings)"
        warnings.append(f"{name} is not a setting and is ignored{hint}")
    return warnings


def check_common(settings: Any, prefix: str) -> None:
    """The rules every process's settings follow; SettingsError names the first one broken.

    Numbers are not negative (``token_port`` and ``health_port`` may be -1: none), ports fit in 16 bits, and the
    log level, log format and event loop are ones the process knows.
    """
    for f in fields(settings):
        value = getattr(settings, f.name)
        name = prefix + f.name.upper()
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        lowest = -1 if f.name in ("token_port", "health_port") else 0
        if value < lowest:
            raise SettingsError(f"{name} must not be {'below -1' if lowest else 'negative'}, got {value}")
        if f.name.endswith("_port") and value > 65535:
            raise SettingsError(f"{name} must be a port (0..65535), got {value}")
    choices = {"log_level": LEVELS, "log_format": FORMATS, "event_loop": ("asyncio", "uvloop")}
    for field_name, allowed in choices.items():
        value = getattr(settings, field_name, None)
        if value is not None and str(value).lower() not in [a.lower() for a in allowed]:
            raise SettingsError(f"{prefix}{field_name.upper()}={value!r} is not one of {', '.join(allowed)}")
    sample = getattr(settings, "log_ok_sample", 0.0)
    if not 0 <= sample <= 1:
        raise SettingsError(f"{prefix}LOG_OK_SAMPLE must be a fraction (0..1), got {sample}")


def describe_env(cls: type[Any], prefix: str, help: Mapping[str, str], required: Sequence[str] = ()) -> str:
    """One line per variable: name, help and default (or "required"), for ``--help``."""
    defaults = cls()
    lines = []
    for f in fields(cls):
        shown = "required" if f.name in required else f"default: {getattr(defaults, f.name)}"
        lines.append(f"  {prefix + f.name.upper():<36} {help[f.name]} ({shown})")
    return "\n".join(lines)
