"""`quotactl ... | head`: a reader that goes away early is not an error of the command."""

from __future__ import annotations

import os
import subprocess
import sys


def test_output_into_a_closed_pipe_exits_cleanly(center_target: str) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before quotactl writes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "quotactl.main", "--target", center_target, "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
