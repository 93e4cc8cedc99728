"""What binds a request id, at the center and at an agent."""

from __future__ import annotations

from quota_rules.fingerprints import reserve_fingerprint


def test_the_fingerprint_binds_budget_amount_and_ttl_as_asked() -> None:
    base = reserve_fingerprint("b", 10, 0)
    assert base == reserve_fingerprint("b", 10, 0)
    others = {
        reserve_fingerprint("c", 10, 0),
        reserve_fingerprint("b", 11, 0),
        reserve_fingerprint("b", 10, 1),
    }
    assert len(others) == 3
    assert base not in others
    # never equal to a deduction's or a return's fingerprint ("deduct|b|10", "return|...")
    assert not base.startswith(("deduct|", "return|"))
