"""``quotactl create --from-file`` against a real center: a file with a bad row creates nothing and
says where; a good one creates every budget with its own definition and says so; a rerun after a
partial run creates only what is missing; a budget that exists differently is a conflict, named."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from quotactl.main import main
from tests.helpers.center import CenterThread


def _run(target: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--target", target, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_file_of_budgets(center: CenterThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tag = secrets.token_hex(3)
    ids = [f"bulk-{tag}-{i:03d}" for i in range(60)]
    rows = ["budget_id,total,unit,sub_buckets,max_slice,reason"]
    rows += [f"{b},{1_000 + i},coupon,{1 + i % 3},{100 + i},campaign {i}" for i, b in enumerate(ids)]
    good = tmp_path / "budgets.csv"

    # A bad row anywhere: nothing is created, every problem is named with its line.
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*rows[:5], f"{ids[0]}-x,1.5", f"{ids[1]},7", *rows[5:]]) + "\n")
    code, out, err = _run(center.target, capsys, "create", "--from-file", str(bad))
    assert code == 2, (out, err)
    assert "line 6: total" in err
    assert f"line 7: budget {ids[1]} is also on line 3" in err
    assert "nothing created" in err
    code, _, _ = _run(center.target, capsys, "get", ids[0])
    assert code == 3  # NOT_FOUND: the good rows were not created either

    # A partial run first (the first 20 rows), then the whole file: only the rest is created.
    good.write_text("\n".join(rows[:21]) + "\n")
    code, out, err = _run(center.target, capsys, "create", "--from-file", str(good))
    assert (code, out.strip()) == (
        0,
        f"created 20, already there 0, conflicting 0, failed 0 (of 20 in {good})",
    )
    good.write_text("\n".join(rows) + "\n")
    code, out, _ = _run(center.target, capsys, "--json", "create", "--from-file", str(good))
    assert code == 0
    assert json.loads(out) == {"created": 40, "existed": 20, "conflicts": [], "failed": []}
    code, out, _ = _run(center.target, capsys, "--json", "get", ids[37])
    budget = json.loads(out)["budget"]
    assert (budget["total"], budget["unit"], budget["policy"]["sub_buckets"]) == (1037, "coupon", 2)

    # The same ids as JSON Lines, one with another total: a conflict, named; the others are there.
    lines = [
        json.dumps(
            {
                "budget_id": b,
                "total": 1_000 + i,
                "unit": "coupon",
                "sub_buckets": 1 + i % 3,
                "max_slice": 100 + i,
            }
        )
        for i, b in enumerate(ids)
    ]
    lines[5] = json.dumps({"budget_id": ids[5], "total": 999})
    again = tmp_path / "budgets.jsonl"
    again.write_text("\n".join(lines) + "\n")
    code, out, _ = _run(center.target, capsys, "create", "--from-file", str(again))
    assert code == 1
    assert out.splitlines()[0] == f"created 0, already there 59, conflicting 1, failed 0 (of 60 in {again})"
    assert out.splitlines()[1].startswith(f"conflict: line 6: {ids[5]}: ")
