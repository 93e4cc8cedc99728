"""Table tests of the conservation check, one per state a transfer can be caught in."""

from __future__ import annotations

from quota_center.buckets.store import BucketView, Pending
from quota_center.budgets.audit import reconcile

TOTAL = 1000


def view(
    holder: str, balance: int, consumed: int = 0, gen: int = 1, pending: tuple[Pending, ...] = ()
) -> BucketView:
    return BucketView(holder, balance, consumed, gen, "active", pending)


def base_ledger(**extra: int) -> dict[tuple[str, int], int]:
    ledger = {("external", 1): -TOTAL, ("main", 1): TOTAL}
    for key, amount in extra.items():
        holder = key.replace("_", ":")
        ledger[(holder, 1)] = ledger.get((holder, 1), 0) + amount
        ledger[("main", 1)] -= amount
    return ledger


def audit(views: list[BucketView], ledger: dict[tuple[str, int], int], committed=(), credited=(), gen=1):  # type: ignore[no-untyped-def]
    return reconcile(
        budget_id="b",
        total=TOTAL,
        gen=gen,
        views={v.holder: v for v in views},
        ledger=ledger,
        committed=committed,
        credited=credited,
    )


def grant(amount: int, tid: str = "t1") -> Pending:
    return Pending(tid, "main", "sub:0", amount, 1, 0)


def test_fresh_budget_balances() -> None:
    r = audit([view("main", TOTAL), view("sub:0", 0)], base_ledger())
    assert r.balanced, r.mismatches
    assert (r.main, r.held, r.consumed, r.in_flight, r.in_doubt) == (TOTAL, 0, 0, 0, 0)
    assert r.available == TOTAL


def test_after_a_finished_refill_and_some_spending() -> None:
    r = audit([view("main", 900), view("sub:0", 60, consumed=40)], base_ledger(sub_0=100))
    assert r.balanced, r.mismatches
    assert (r.main, r.held, r.consumed) == (900, 60, 40)


def test_taken_but_not_in_the_ledger_belongs_to_the_source() -> None:
    r = audit([view("main", 900, pending=(grant(100),)), view("sub:0", 0)], base_ledger())
    assert r.balanced, r.mismatches
    assert r.in_flight == 100


def test_committed_but_not_credited_belongs_to_the_target() -> None:
    r = audit([view("main", 900, pending=(grant(100),)), view("sub:0", 0)], base_ledger(sub_0=100), ["t1"])
    assert r.balanced, r.mismatches
    assert r.in_flight == 100


def test_committed_and_credited_but_not_cleared_counts_once() -> None:
    r = audit(
        [view("main", 900, pending=(grant(100),)), view("sub:0", 100)], base_ledger(sub_0=100), ["t1"], ["t1"]
    )
    assert r.balanced, r.mismatches
    assert r.in_flight == 0


def test_an_incoming_top_up_not_yet_in_the_ledger_counts_nowhere() -> None:
    incoming = Pending("top", "main", "main", 500, 1, 0)
    r = audit([view("main", TOTAL, pending=(incoming,)), view("sub:0", 0)], base_ledger())
    assert r.balanced, r.mismatches
    assert r.in_flight == 0


def test_a_unit_missing_in_redis_is_reported_by_holder() -> None:
    r = audit([view("main", 900), view("sub:0", 59, consumed=40)], base_ledger(sub_0=100))
    assert not r.balanced
    assert any("sub:0" in m and "99" in m and "100" in m for m in r.mismatches)


def test_a_unit_too_many_breaks_the_identity() -> None:
    r = audit([view("main", 901), view("sub:0", 60, consumed=40)], base_ledger(sub_0=100))
    assert not r.balanced
    assert any("identity" in m for m in r.mismatches)


def test_old_generation_balances_are_in_doubt() -> None:
    ledger = base_ledger(sub_0=300)  # granted in generation 1, then Redis was lost
    r = audit([view("main", 700, gen=2), view("sub:0", 0, gen=2)], ledger, gen=2)
    assert r.balanced, r.mismatches
    assert r.in_doubt == 300
    assert r.available == TOTAL - 300
    assert [h.in_doubt for h in r.holders if h.holder == "sub:0"] == [300]


def test_a_missing_bucket_is_a_mismatch() -> None:
    r = audit([view("main", TOTAL)], base_ledger())
    assert r.balanced
    r = reconcile(
        budget_id="b",
        total=TOTAL,
        gen=1,
        views={"main": None},
        ledger=base_ledger(),
        committed=(),
        credited=(),
    )
    assert not r.balanced
    assert any("missing" in m for m in r.mismatches)


def lost_generation_ledger() -> dict[tuple[str, int], int]:
    """Generation 1 granted sub:0 300 and sub:1 0; Redis lost both; the bump moved them to doubt."""
    ledger = base_ledger(sub_0=300)
    ledger[("sub:0", 1)] = 0
    ledger[("doubt:sub:0@1", 1)] = 300
    ledger[("sub:1", 1)] = 0
    ledger[("doubt:sub:1@1", 1)] = 0
    return ledger


def test_in_doubt_is_listed_per_named_holder() -> None:
    views = [view("main", 700, gen=2), view("sub:0", 0, gen=2), view("sub:1", 0, gen=2)]
    r = audit(views, lost_generation_ledger(), gen=2)
    assert r.balanced, r.mismatches
    assert (r.in_doubt, r.consumed, r.available) == (300, 0, TOTAL - 300)
    assert [(h.holder, h.in_doubt) for h in r.holders if h.in_doubt] == [("doubt:sub:0@1", 300)]
    assert "doubt:sub:1@1" not in [h.holder for h in r.holders]  # nothing in doubt there


def test_settled_consumption_counts_as_consumed() -> None:
    ledger = lost_generation_ledger()
    # The spend log showed 120 consumed; the other 180 went back to main in generation 2.
    ledger[("doubt:sub:0@1", 2)] = -300
    ledger[("consumed", 2)] = 120
    ledger[("main", 2)] = 180
    views = [view("main", 880, gen=2), view("sub:0", 0, gen=2), view("sub:1", 0, gen=2)]
    r = audit(views, ledger, gen=2)
    assert r.balanced, r.mismatches
    assert (r.in_doubt, r.consumed, r.main) == (0, 120, 880)
    assert [h.holder for h in r.holders if h.in_doubt] == []


def test_consumption_booked_and_in_live_sub_buckets_adds_up() -> None:
    ledger = lost_generation_ledger()
    ledger[("doubt:sub:0@1", 2)] = -100  # 100 booked so far; 200 still in doubt
    ledger[("consumed", 2)] = 100
    ledger[("main", 2)] = -50  # a refill of sub:0 in generation 2, of which it spent 20
    ledger[("sub:0", 2)] = 50
    views = [view("main", 650, gen=2), view("sub:0", 30, consumed=20, gen=2), view("sub:1", 0, gen=2)]
    r = audit(views, ledger, gen=2)
    assert r.balanced, r.mismatches
    assert (r.in_doubt, r.consumed, r.held) == (200, 120, 30)


def test_a_settlement_row_missing_its_credit_on_main_is_a_mismatch() -> None:
    ledger = lost_generation_ledger()
    ledger[("doubt:sub:0@1", 2)] = -300
    ledger[("main", 2)] = 300  # released to main in the ledger, never credited in Redis
    views = [view("main", 700, gen=2), view("sub:0", 0, gen=2), view("sub:1", 0, gen=2)]
    r = audit(views, ledger, gen=2)
    assert not r.balanced
    assert any("main" in m and "700" in m and "1000" in m for m in r.mismatches)
