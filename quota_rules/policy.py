"""A budget's slice policy: how its total is sliced among holders, with documented defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from quota_rules.limits import MAX_AMOUNT, InvalidInput

STRATEGIES = ("progressive", "static", "central")
MAX_SUB_BUCKETS = 256


@dataclass(frozen=True, slots=True)
class Policy:
    """Slice policy of one budget. Amounts in minor units.

    Defaults: four sub-buckets spread a hot budget over shards without fragmenting a
    small one much; a slice is at least 1 unit and at most total / (4 × sub-buckets)
    (set at creation), so when every sub-bucket holds a full slice three quarters of
    the budget is still in main; scarcity starts when what is free falls below one
    full slice per sub-bucket (a quarter of the total by default) and central mode
    below one max slice (see ``modes``); a holder refills below 25 % of its last
    slice; slices cover two seconds of a holder's observed rate.
    """

    strategy: str = "progressive"
    sub_buckets: int = 4
    min_slice: int = 1
    max_slice: int = 0  # 0: total // (4 * sub_buckets) at creation
    refill_horizon_ms: int = 2000
    low_watermark_pct: int = 25
    scarcity_threshold: int = 0  # 0: sub_buckets * max_slice
    central_threshold: int = 0  # 0: max_slice
    lease_ms: int = 0  # 0: the center's agent lease (QUOTA_CENTER_AGENT_LEASE_MS)

    def to_json(self) -> dict[str, int | str]:
        return dict(asdict(self))


DEFAULT = Policy()
# An agent's lease longer than a week would keep a vanished agent's balance out of reach as long.
MAX_LEASE_MS = 7 * 24 * 3600 * 1000


def resolve(requested: Policy, total: int) -> Policy:
    """Fill a requested policy's zero fields from the defaults and check it."""
    p = requested
    if p.strategy not in STRATEGIES:
        raise InvalidInput(f"strategy must be one of {', '.join(STRATEGIES)}, got {p.strategy!r}")
    if not 1 <= p.sub_buckets <= MAX_SUB_BUCKETS:
        raise InvalidInput(f"sub_buckets must be 1..{MAX_SUB_BUCKETS}, got {p.sub_buckets}")
    for name in ("min_slice", "max_slice", "refill_horizon_ms", "scarcity_threshold", "central_threshold"):
        value = getattr(p, name)
        if not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(f"{name} must be 0..{MAX_AMOUNT}, got {value}")
    if not 0 <= p.low_watermark_pct <= 100:
        raise InvalidInput(f"low_watermark_pct must be 0..100, got {p.low_watermark_pct}")
    if not 0 <= p.lease_ms <= MAX_LEASE_MS:
        raise InvalidInput(
            f"lease_ms must be 0..{MAX_LEASE_MS} (0: the center's agent lease), got {p.lease_ms}"
        )
    min_slice = max(1, p.min_slice)
    max_slice = p.max_slice or max(min_slice, total // (4 * p.sub_buckets))
    if max_slice < min_slice:
        raise InvalidInput(f"max_slice {max_slice} is below min_slice {min_slice}")
    return replace(
        p,
        min_slice=min_slice,
        max_slice=max_slice,
        refill_horizon_ms=p.refill_horizon_ms or DEFAULT.refill_horizon_ms,
        low_watermark_pct=p.low_watermark_pct or DEFAULT.low_watermark_pct,
        # Derived thresholds stay within the amounts a budget can have, however large the slices.
        scarcity_threshold=p.scarcity_threshold or min(MAX_AMOUNT, p.sub_buckets * max_slice),
        central_threshold=p.central_threshold or max_slice,
        lease_ms=p.lease_ms,
    )


def from_json(data: Mapping[str, object]) -> Policy:
    """A policy as stored with its budget (all fields resolved)."""
    known = {k: v for k, v in data.items() if k in Policy.__dataclass_fields__}
    return Policy(**known)  # type: ignore[arg-type]
