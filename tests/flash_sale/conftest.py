"""A flash sale's end, end to end: the session's center (or two centers), three region agents,
real Redis and PostgreSQL; helpers that read what the center served from its own metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quota_center.metrics import REQUESTS
from tests.helpers.agent import AgentThread
from tests.helpers.center import CenterThread
from tests.helpers.regions import agents_of

REGIONS = ("eu", "us", "ap")


@pytest.fixture
def agents(center: CenterThread, tmp_path: Path) -> Iterator[list[AgentThread]]:
    with agents_of(center, tmp_path, REGIONS) as running:
        yield running


def center_deducts() -> int:
    """Deduct and DeductBatch calls every center of this process answered so far (its metrics)."""
    total = 0.0
    for metric in REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("method") in ("Deduct", "DeductBatch"):
                total += sample.value
    return int(total)
