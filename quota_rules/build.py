"""What build this is: the package version, for ``--version`` and the ``quota_build_info`` metric."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

PACKAGE = "quota-center"


def version() -> str:
    """The installed package's version ("unknown" when run from a tree that was never installed)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: the program's name, this version and the Python it runs on."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version()} (Python {platform.python_version()})",
    )


def build_labels(component: str) -> dict[str, str]:
    """The labels of ``quota_build_info`` (each process's metrics export it, value 1)."""
    return {"component": component, "version": version(), "python": platform.python_version()}
