"""The checked-in stubs are exactly what scripts/gen_proto.py generates from the .proto files."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "proto" / "quota" / "v1"


def test_regenerating_stubs_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "quota" / "v1"
    generated = sorted(p.name for p in fresh.iterdir() if p.suffix in {".py", ".pyi"})
    checked_in = sorted(p.name for p in PACKAGE.iterdir() if p.suffix in {".py", ".pyi"})
    assert generated == checked_in
    _, mismatch, errors = filecmp.cmpfiles(fresh, PACKAGE, generated, shallow=False)
    assert mismatch == [], f"stale stubs, run `make proto`: {mismatch}"
    assert errors == []


def test_every_rpc_of_the_design_is_in_the_contract() -> None:
    from quota.v1 import admin_pb2, quota_pb2, session_pb2

    quota = {m.name for m in quota_pb2.DESCRIPTOR.services_by_name["Quota"].methods}
    admin = {m.name for m in admin_pb2.DESCRIPTOR.services_by_name["Admin"].methods}
    session = {m.name for m in session_pb2.DESCRIPTOR.services_by_name["AgentSession"].methods}
    assert quota == {"Deduct", "Return", "Reserve", "Confirm", "Cancel", "DeductBatch", "GetBalance"}
    assert admin == {
        "CreateBudget",
        "TopUp",
        "PauseBudget",
        "ResumeBudget",
        "CloseBudget",
        "GetBudget",
        "ListBudgets",
        "Audit",
        "Settle",
    }
    assert session == {"Session"}
