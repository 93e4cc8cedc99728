"""ListBudgets and Audit page by budget id, with each page's numbers read together (one round of
pipelined Redis reads and one ledger transaction per page): every budget comes exactly once across
the pages, while budgets are being created meanwhile; the numbers are each budget's own; and
``quotactl audit`` goes through every page, printing as it goes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from quota.v1 import admin_pb2 as apb
from quota.v1 import common_pb2 as pb
from quotactl.main import main
from tests.helpers.calls import OK, create, deduct
from tests.helpers.center import CenterThread, Client, own_ledger_center

BUDGETS = 180
PAGE = 25


@pytest.fixture(scope="module")
def paged_center(redis_url: str, database_url: str) -> Iterator[CenterThread]:
    """A center of its own ledger: its lists hold only this module's budgets."""
    with own_ledger_center(redis_url, database_url, "qc_page") as running:
        yield running


@pytest.fixture
def serving(paged_center: CenterThread) -> CenterThread:
    return paged_center


async def _pages(client: Client, audit: bool) -> list[str]:
    seen: list[str] = []
    token = ""
    while True:
        if audit:
            a = await client.admin.Audit(apb.AuditRequest(page_size=PAGE, page_token=token))
            assert a.balanced, [b.budget_id for b in a.budgets if not b.balanced]
            seen += [b.budget_id for b in a.budgets]
            token = a.next_page_token
        else:
            page = await client.admin.ListBudgets(apb.ListBudgetsRequest(page_size=PAGE, page_token=token))
            seen += [b.budget_id for b in page.budgets]
            token = page.next_page_token
        if not token:
            return seen
        await asyncio.sleep(0)  # let the creations in


async def test_every_budget_exactly_once_across_pages_while_more_are_created(client: Client) -> None:
    tag = secrets.token_hex(3)
    before = [f"p{tag}-{i:04d}" for i in range(BUDGETS)]
    for i in range(0, BUDGETS, 30):
        await asyncio.gather(
            *(create(client, b, 1_000 + n, sub_buckets=2) for n, b in enumerate(before[i : i + 30], start=i))
        )
    # Some with numbers of their own: each page shows each budget's, not a neighbour's.
    for n, b in enumerate(before[::17]):
        assert (await deduct(client, b, f"{b}-d", n + 1)).code == OK
    during = [f"p{tag}-{i:04d}x" for i in range(60)]  # sort between the existing ones

    async def creating() -> None:
        for b in during:
            await create(client, b, 500, sub_buckets=1)

    listed, audited, _ = await asyncio.gather(
        _pages(client, audit=False), _pages(client, audit=True), creating()
    )
    for seen in (listed, audited):
        assert len(seen) == len(set(seen)), "a budget came twice"
        assert set(before) <= set(seen), "a budget that existed throughout was missed"
        assert set(seen) <= set(before) | set(during)
        assert seen == sorted(seen)

    page = await client.admin.ListBudgets(apb.ListBudgetsRequest(page_size=1000))
    by_id = {b.budget_id: b for b in page.budgets}
    for n, b in enumerate(before[::17]):
        assert (by_id[b].total, by_id[b].consumed) == (1_000 + 17 * n, n + 1)
        assert by_id[b].available == 1_000 + 17 * n - (n + 1)
    assert all(by_id[b].state == pb.BUDGET_STATE_ACTIVE for b in before)


async def test_quotactl_audit_streams_every_page(
    paged_center: CenterThread, client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = secrets.token_hex(3)
    mine = [f"q{tag}-{i:04d}" for i in range(520)]  # more than one page of quotactl's (500)
    for i in range(0, len(mine), 40):
        await asyncio.gather(*(create(client, b, 100, sub_buckets=1) for b in mine[i : i + 40]))
    code = await asyncio.to_thread(main, ["--target", paged_center.target, "audit", "--limit", "100000"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    blocks = [line for line in out.splitlines() if line.startswith("budget ")]
    summary = out.splitlines()[-1]
    assert summary == f"audit: BALANCED ({len(blocks)} budgets)"
    assert set(mine) <= {b.split()[1] for b in blocks}
    assert "budgets so far" in err  # progress between the pages (500 a page)

    # From where an earlier run stopped, a given state only.
    first = blocks[0].split()[1]
    argv = ["--target", paged_center.target, "audit", "--after", first, "--state", "active", "--limit", "3"]
    code = await asyncio.to_thread(main, argv)
    out, _ = capsys.readouterr()
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line.startswith("budget ")] == [
        b.split()[1] for b in blocks[1:4]
    ]
    assert "more budgets exist: go on with --after" in out.splitlines()[-1]


async def test_a_create_answers_what_a_get_then_shows(client: Client) -> None:
    """CreateBudget answers with the numbers it created (no audit, so that creating many is cheap):
    the same as GetBudget's audit of it."""
    budget_id = f"c{secrets.token_hex(4)}"
    created = await client.admin.CreateBudget(
        apb.CreateBudgetRequest(
            budget_id=budget_id, unit="coupon", total=12_345, policy=apb.SlicePolicy(sub_buckets=3), actor="t"
        )
    )
    assert created.code == OK, created.message
    got = await client.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))
    assert created.budget == got.budget
    audited = (await client.admin.Audit(apb.AuditRequest(budget_id=budget_id))).budgets[0]
    assert (audited.main, audited.total, [h.holder for h in audited.holders]) == (
        12_345,
        12_345,
        ["main", "sub:0", "sub:1", "sub:2"],
    )
