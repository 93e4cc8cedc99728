"""Result codes: the services speak in short names (OK, INSUFFICIENT), the wire in the proto enum."""

from __future__ import annotations

from quota.v1 import common_pb2 as pb

# The proto message constructors take an enum field by its value name.
_NAMES = frozenset(pb.ResultCode.keys())


def result_code(name: str) -> str:
    full = f"RESULT_CODE_{name}"
    if full not in _NAMES:
        raise ValueError(f"unknown result code {name}")
    return full
