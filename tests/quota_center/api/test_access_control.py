"""Identity and roles at the center, over real mutual TLS (README, "Security"): every call is
made with a certificate of the test CA (tests/helpers/tls.py) or a bearer token, and the
center's answers and its ledger are checked."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import grpc
import pytest

from quota.v1 import admin_pb2 as apb
from quota.v1 import admin_pb2_grpc, quota_pb2_grpc, session_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from tests.helpers.center import CenterThread, center_settings
from tests.helpers.tls import OPS_TOKEN, Tls

DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
OK = pb.RESULT_CODE_OK


class As:
    """Stubs on a channel to the center as one identity (or with a token, or as nobody)."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials, token: str | None = None) -> None:
        if token is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        self.channel = grpc.aio.secure_channel(
            target, credentials, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.session = session_pb2_grpc.AgentSessionStub(self.channel)

    async def create(self, budget_id: str, total: int = 1000, actor: str = "") -> apb.BudgetResponse:
        return await self.admin.CreateBudget(
            apb.CreateBudgetRequest(
                budget_id=budget_id,
                unit="EUR-cent",
                total=total,
                policy=apb.SlicePolicy(sub_buckets=2),
                actor=actor,
            ),
            timeout=10,
        )

    async def deduct(self, budget_id: str, amount: int = 1) -> pb.DeductResponse:
        return await self.quota.Deduct(
            pb.DeductRequest(budget_id=budget_id, request_id=secrets.token_hex(8), amount=amount), timeout=10
        )


Connect = Callable[..., As]  # (identity=None, token=None, port=None): a caller's stubs


@pytest.fixture
async def connect(secure_center: CenterThread, tls: Tls) -> AsyncIterator[Connect]:
    opened: list[As] = []

    def make(identity: str | None = None, token: str | None = None, port: int | None = None) -> As:
        target = f"127.0.0.1:{port}" if port is not None else secure_center.target
        credentials = tls.server_only() if identity is None else tls.credentials(identity)
        opened.append(As(target, credentials, token))
        return opened[-1]

    yield make
    for c in opened:
        await c.channel.close()


def _token_port(center: CenterThread) -> int:
    assert center.center is not None
    assert center.center.token_port is not None
    return center.center.token_port


async def _status(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    print(f"{info.value.code().name}: {info.value.details()}")  # shown when an assertion fails
    return info.value.code()


async def _open_session(caller: As) -> spb.CenterMessage:
    """Open a session stream and read its first answer. A caller the guard refuses is refused when
    the stream opens, before any message: writing a Hello to it could race the refusal (grpcio
    then reports its failed write as INTERNAL instead of the server's status)."""
    call = caller.session.Session()
    answer: spb.CenterMessage = await call.read()
    return answer


async def test_a_spender_can_neither_administer_nor_open_a_session(connect: Connect, budget_id: str) -> None:
    spender = connect("checkout")
    assert await _status(spender.create(f"shop-{budget_id}")) == DENIED
    assert (
        await _status(spender.admin.TopUp(apb.TopUpRequest(budget_id="shop-x", request_id="t", amount=1)))
        == DENIED
    )
    assert await _status(_open_session(spender)) == DENIED
    # Nothing was created by the refused call.
    admin = connect("tester")
    assert await _status(admin.admin.GetBudget(apb.GetBudgetRequest(budget_id=f"shop-{budget_id}"))) == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_a_spender_spends_only_its_own_budgets(connect: Connect, budget_id: str) -> None:
    admin, spender = connect("tester"), connect("checkout")
    mine, other = f"shop-{budget_id}", f"other-{budget_id}"
    for b in (mine, other):
        assert (await admin.create(b)).code == OK
    assert (await spender.deduct(mine, 5)).code == OK
    assert await _status(spender.deduct(other, 5)) == DENIED
    # A batch with one foreign item is refused whole: nothing of it is applied.
    batch = pb.DeductBatchRequest(
        items=[
            pb.DeductRequest(budget_id=mine, request_id="batch-1", amount=7),
            pb.DeductRequest(budget_id=other, request_id="batch-2", amount=7),
        ]
    )
    assert await _status(spender.quota.DeductBatch(batch)) == DENIED
    consumed = {
        b: (await admin.admin.GetBudget(apb.GetBudgetRequest(budget_id=b))).budget.consumed
        for b in (mine, other)
    }
    assert consumed == {mine: 5, other: 0}
    # A spender is not a reader.
    assert await _status(spender.quota.GetBalance(pb.GetBalanceRequest(budget_id=mine))) == DENIED


async def test_a_reader_reads_and_changes_nothing(connect: Connect, budget_id: str) -> None:
    admin, reader = connect("tester"), connect("watcher")
    assert (await admin.create(budget_id)).code == OK
    got = await reader.admin.GetBudget(apb.GetBudgetRequest(budget_id=budget_id))
    assert got.budget.total == 1000
    assert (await reader.admin.Audit(apb.AuditRequest(budget_id=budget_id))).balanced
    assert await _status(reader.deduct(budget_id)) == DENIED
    assert await _status(reader.admin.CloseBudget(apb.ChangeStateRequest(budget_id=budget_id))) == DENIED


async def test_an_agent_certificate_opens_a_session_only_under_its_own_id(connect: Connect) -> None:
    agent = connect("eu-7")
    other = agent.session.Session()
    await other.write(spb.AgentMessage(hello=spb.Hello(agent_id="eu-8", region="eu")))
    refusal = await other.read()
    assert refusal.WhichOneof("body") == "error", refusal
    assert "only as agent 'eu-7'" in refusal.error.message
    assert await _status(other.read()) == DENIED
    own = agent.session.Session()
    await own.write(spb.AgentMessage(hello=spb.Hello(agent_id="eu-7", region="eu")))
    assert (await own.read()).WhichOneof("body") == "welcome"
    own.cancel()
    # An agent is not an admin.
    assert await _status(agent.create("agent-made")) == DENIED


async def test_a_caller_without_an_identity_is_unauthenticated(
    connect: Connect, secure_center: CenterThread, tls: Tls, budget_id: str
) -> None:
    token_port = _token_port(secure_center)
    nobody = connect(None, port=token_port)
    assert await _status(nobody.create(budget_id)) == UNAUTHENTICATED
    assert await _status(nobody.deduct(budget_id)) == UNAUTHENTICATED
    stranger = connect(None, token="not-a-token-the-center-knows", port=token_port)
    assert await _status(stranger.create(budget_id)) == UNAUTHENTICATED
    # On the mutual-TLS port a caller without a certificate does not get past the handshake.
    assert await _status(connect(None).create(budget_id)) == grpc.StatusCode.UNAVAILABLE
    # A certificate of the CA whose name the access file does not know has no roles.
    assert await _status(connect("someone-else").create(budget_id)) == DENIED
    # Plaintext to a TLS port fails too.
    async with grpc.aio.insecure_channel(secure_center.target) as plain:
        call = admin_pb2_grpc.AdminStub(plain).GetBudget(apb.GetBudgetRequest(budget_id=budget_id), timeout=5)
        assert await _status(call) == grpc.StatusCode.UNAVAILABLE


async def test_the_ledger_records_the_authenticated_identity_not_the_claimed_actor(
    connect: Connect, secure_center: CenterThread, database_url: str, budget_id: str
) -> None:
    admin = connect("tester")
    assert (await admin.create(budget_id, actor="mallory")).code == OK
    top_up = await admin.admin.TopUp(
        apb.TopUpRequest(budget_id=budget_id, request_id="t1", amount=50, actor="mallory", reason="restock")
    )
    assert top_up.code == OK
    ops = connect(None, token=OPS_TOKEN, port=_token_port(secure_center))
    by_token = await ops.admin.TopUp(apb.TopUpRequest(budget_id=budget_id, request_id="t2", amount=25))
    assert by_token.code == OK
    assert by_token.budget.total == 1075
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT kind, actor, amount FROM ledger WHERE budget_id = $1 AND kind IN ('create', 'top_up')"
            " ORDER BY seq",
            budget_id,
        )
    finally:
        await conn.close()
    assert [(r["kind"], r["actor"], r["amount"]) for r in rows] == [
        ("create", "tester", 1000),
        ("top_up", "tester", 50),
        ("top_up", "ops", 25),
    ]


def test_the_access_file_and_tls_files_are_checked_at_start(
    tls: Tls, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    from quota_center.settings import SettingsError

    def refused(**overrides: object) -> str:
        thread = CenterThread(center_settings(redis_url, database_url, **overrides))
        with pytest.raises(RuntimeError) as info:
            thread.start()
        cause = info.value.__cause__
        assert isinstance(cause, SettingsError), cause
        return str(cause)

    listener = tls.listener()
    assert "needs TLS" in refused(access_file=listener["access_file"])
    assert "set together" in refused(tls_cert_file=listener["tls_cert_file"])
    other = tls.pki.client("unrelated")
    assert "is not the key of the certificate" in refused(**{**listener, "tls_key_file": str(other.key)})
    bad = tmp_path / "access.toml"
    bad.write_text('[identities.ops]\nroles = ["superuser"]\n')
    assert "identities.ops: unknown role 'superuser'" in refused(**{**listener, "access_file": str(bad)})
