"""Regenerate the Python stubs of proto/quota/v1 in place.

The proto path is the import path, so generated modules import each other as
``quota.v1.<name>_pb2``. The stubs are checked in; ``tests/proto/test_stubs.py``
fails when running this script would change them.

Usage: python scripts/gen_proto.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("quota") / "v1"


def generate(out: Path) -> None:
    """Write the stubs of every proto/quota/v1/*.proto under ``out``."""
    plugin = shutil.which("protoc-gen-mypy_grpc", path=str(Path(sys.executable).parent))
    if plugin is None:
        raise SystemExit("protoc-gen-mypy_grpc not found next to the interpreter: pip install mypy-protobuf")
    include = Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (out / "quota", out / PACKAGE):
        (package / "__init__.py").touch()
    (out / "quota" / "py.typed").touch()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output root (default: proto/)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
