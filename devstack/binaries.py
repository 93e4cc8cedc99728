"""Where the programs live: Redis and PostgreSQL (Debian layout first, then PATH) and our own commands."""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from pathlib import Path

from .errors import StackError

_INSTALL_HINT = "run scripts/install-deps.sh (Debian packages redis-server and postgresql)"


def redis_binary(name: str) -> str:
    """Path of redis-server or redis-cli."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
    if found is None:
        raise StackError(f"{name} not found on PATH; {_INSTALL_HINT}")
    return found


@cache
def postgres_bindir() -> Path:
    """The PostgreSQL bin dir: $PG_BINDIR, else the highest /usr/lib/postgresql/*/bin, else PATH.

    Debian keeps initdb and postgres off PATH, in a versioned dir.
    """
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override)
    versioned = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if versioned:
        return max(versioned, key=lambda d: _version_key(d.parent.name))
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise StackError(f"PostgreSQL server binaries (initdb, postgres) not found; {_INSTALL_HINT}")


def postgres_binary(name: str) -> str:
    """Path of a PostgreSQL program (initdb, postgres, psql, pg_isready); client tools may come from PATH."""
    path = postgres_bindir() / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found in {postgres_bindir()} nor on PATH; {_INSTALL_HINT}")
    return found


def project_command(script: str, module: str) -> list[str]:
    """A console script of this project next to this Python (the venv's), else ``python -m module``.

    The console script is what a user runs; the module form keeps working from a bare checkout.
    """
    path = Path(sys.executable).parent / script
    return [str(path)] if path.is_file() else [sys.executable, "-m", module]


def _version_key(name: str) -> tuple[int, ...]:
    # "15" > "9.6" must compare as numbers, not strings.
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)
