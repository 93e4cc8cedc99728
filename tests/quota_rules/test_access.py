"""The access decision and the access file's checks (quota_rules/access.py), as tables."""

from __future__ import annotations

import pytest

from quota_rules.access import (
    ANONYMOUS,
    AccessFileError,
    Caller,
    decide,
    may_be_agent,
    parse_policy,
    token_digest,
)

POLICY = parse_policy(
    f"""
[identities.ops]
roles = ["admin"]
[identities.shop]
roles = ["spender"]
budgets = ["shop-*", "coupons"]
[identities.eye]
roles = ["reader"]
[identities."eu-*"]
roles = ["agent"]
[identities."eu-special-*"]
roles = ["reader"]
[tokens]
"{token_digest("s3cret")}" = "ops"
"""
)


def caller(name: str) -> Caller:
    return Caller(name, "certificate", POLICY.grant_for(name))


Q, A, S = "/quota.v1.Quota/", "/quota.v1.Admin/", "/quota.v1.AgentSession/Session"


@pytest.mark.parametrize(
    ("name", "method", "budgets", "allowed"),
    [
        ("ops", A + "CreateBudget", ["x"], True),
        ("ops", A + "Settle", ["x"], True),
        ("ops", A + "ListBudgets", [], True),  # admin reads too
        ("ops", Q + "Deduct", ["x"], False),  # but does not spend
        ("ops", S, [], False),
        ("shop", Q + "Deduct", ["shop-1"], True),
        ("shop", Q + "DeductBatch", ["shop-1", "coupons"], True),
        ("shop", Q + "DeductBatch", ["shop-1", "coupons-2"], False),  # "coupons" is exact, not a prefix
        ("shop", Q + "Return", ["other"], False),
        ("shop", Q + "GetBalance", ["shop-1"], False),
        ("shop", A + "TopUp", ["shop-1"], False),
        ("shop", S, [], False),
        ("eye", A + "Audit", ["x"], True),
        ("eye", Q + "GetBalance", ["x"], True),
        ("eye", Q + "Cancel", ["x"], False),
        ("eu-1", S, [], True),
        ("eu-1", Q + "Deduct", ["anything"], True),  # what an agent forwards for its callers
        ("eu-1", A + "CloseBudget", ["x"], False),
        ("eu-special-1", S, [], False),  # the longest matching pattern is its grant
        ("nobody", Q + "GetBalance", ["x"], False),
        ("nobody", "/grpc.health.v1.Health/Check", [], True),  # methods outside the table are open
    ],
)
def test_decide(name: str, method: str, budgets: list[str], allowed: bool) -> None:
    assert (decide(caller(name), method, budgets, enforced=True) is None) == allowed


def test_without_an_access_file_every_call_is_allowed() -> None:
    assert decide(ANONYMOUS, A + "CreateBudget", ["x"], enforced=False) is None


def test_an_identified_caller_speaks_only_for_its_own_agent_id() -> None:
    assert may_be_agent(caller("eu-1"), "eu-1") is None
    assert may_be_agent(caller("eu-1"), "eu-2") is not None
    assert may_be_agent(ANONYMOUS, "eu-2") is None  # plaintext development stack


def test_tokens_are_kept_as_digests() -> None:
    assert POLICY.token_identity("s3cret") == "ops"
    assert POLICY.token_identity("S3cret") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not toml [", "not valid TOML"),
        ("[identities]\n", "at least one identity"),
        ('[identities.a]\nroles = ["root"]\n', "unknown role 'root'"),
        ("[identities.a]\nroles = []\n", "roles must be a non-empty list"),
        ('[identities.a]\nroles = ["spender"]\n', "a spender must name its budgets"),
        ('[identities.a]\nroles = ["reader"]\nbudgets = ["x"]\n', "budgets limit a spender"),
        ('[identities.a]\nroles = ["spender"]\nbudgets = ["{bad}"]\n', "budgets entry '{bad}'"),
        ('[identities.a]\nroles = ["reader"]\ncolour = 1\n', "unknown key 'colour'"),
        ('[identities."a b"]\nroles = ["reader"]\n', "identities.a b: an identity is"),
        ('[identities.a]\nroles = ["reader"]\n[tokens]\nplain = "a"\n', "not a SHA-256"),
        (f'[identities.a]\nroles = ["reader"]\n[tokens]\n"{"0" * 64}" = "b"\n', "identity 'b' is not in"),
        ('[identities.a]\nroles = ["reader"]\n[groups]\n', "unknown section 'groups'"),
    ],
)
def test_a_bad_access_file_is_refused_with_the_entry_named(text: str, error: str) -> None:
    with pytest.raises(AccessFileError, match=error.replace("[", r"\[").replace("{", r"\{")):
        parse_policy(text)


def test_the_access_files_devstack_writes_grant_what_they_were_given() -> None:
    from devstack.certs import LOCAL_ACCESS, access_file

    policy = parse_policy(
        access_file(
            {"ops.eu@corp": (["admin"], []), "shop": (["spender"], ["shop-*"])},
            agents=("eu-",),
            tokens={token_digest("t"): "ops.eu@corp"},
        )
    )
    assert policy.grant_for("ops.eu@corp") is not None
    assert decide(caller("x"), A + "TopUp", [], enforced=True) is not None  # nobody else
    shop = policy.grant_for("shop")
    assert shop is not None
    assert shop.may_spend("shop-1")
    assert not shop.may_spend("other")
    eu = policy.grant_for("eu-7")
    assert eu is not None
    assert eu.roles == {"agent"}
    assert policy.token_identity("t") == "ops.eu@corp"
    local = parse_policy(LOCAL_ACCESS)
    assert local.grant_for("admin") is not None
    assert local.grant_for("us-1") is not None
