"""Who may call what: roles, the access file that grants them, and the decision for one call (pure).

Both processes enforce it on their gRPC listeners (quota_rules/guard.py); the README's
"Security" section is the user's view. A caller's identity is the subject common name of its
client certificate, or the identity a bearer token is mapped to in the access file. Roles:

- ``admin``: create, top up, pause, resume, close and settle budgets, and everything ``reader`` may;
- ``agent``: the agent session, only under the agent id the identity names, and the spending
  calls an agent forwards for its callers, on every budget;
- ``spender``: Deduct, Return, Reserve, Confirm, Cancel and DeductBatch on its budgets (exact ids
  or prefixes ending in ``*``);
- ``reader``: GetBalance, GetBudget, ListBudgets and Audit.

Methods not in ``ALLOWED`` (health, reflection) are open to every caller.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from quota_rules.limits import InvalidInput, check_budget_id


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    SPENDER = "spender"
    READER = "reader"


ADMIN, AGENT, SPENDER, READER = Role.ADMIN, Role.AGENT, Role.SPENDER, Role.READER

_QUOTA = "/quota.v1.Quota/"
_ADMIN = "/quota.v1.Admin/"
SESSION = "/quota.v1.AgentSession/Session"
SPENDING = ("Deduct", "Return", "Reserve", "Confirm", "Cancel", "DeductBatch")
CHANGES = ("CreateBudget", "TopUp", "PauseBudget", "ResumeBudget", "CloseBudget", "Settle")
READS = ("GetBudget", "ListBudgets", "Audit")

ALLOWED: dict[str, frozenset[Role]] = {
    **{_QUOTA + m: frozenset({SPENDER, AGENT}) for m in SPENDING},
    _QUOTA + "GetBalance": frozenset({READER, ADMIN, AGENT}),
    **{_ADMIN + m: frozenset({ADMIN}) for m in CHANGES},
    **{_ADMIN + m: frozenset({READER, ADMIN}) for m in READS},
    SESSION: frozenset({AGENT}),
}

# Identity names: what a certificate's common name or a token's mapping may be.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class AccessFileError(ValueError):
    """The access file cannot be used; the message names the entry and why."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one identity (or identity pattern) may do."""

    roles: frozenset[Role]
    budgets: tuple[str, ...] = ()  # a spender's budgets: ids, prefixes ending in "*", or "*"

    def may_spend(self, budget_id: str) -> bool:
        return any(
            b == "*" or b == budget_id or (b.endswith("*") and budget_id.startswith(b[:-1]))
            for b in self.budgets
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: ``name`` is empty for a caller that presented no identity."""

    name: str
    via: str  # "certificate", "token" or "none"
    grant: Grant | None  # None: access control is off, or the identity has no grant


ANONYMOUS = Caller("", "none", None)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    grants: Mapping[str, Grant]  # identity name, or a prefix pattern ending in "*"
    tokens: Mapping[str, str]  # sha256 of the token (hex) -> identity name

    def grant_for(self, name: str) -> Grant | None:
        """The identity's own entry, else the longest pattern that matches it."""
        if name in self.grants:
            return self.grants[name]
        patterns = [p for p in self.grants if p.endswith("*") and name.startswith(p[:-1])]
        return self.grants[max(patterns, key=len)] if patterns else None

    def token_identity(self, token: str) -> str | None:
        return self.tokens.get(token_digest(token))


def decide(caller: Caller, method: str, budget_ids: Iterable[str], enforced: bool) -> str | None:
    """Why ``caller`` may not call ``method`` on these budgets, or None if it may.

    With access control off (``enforced`` False) every call is allowed.
    """
    needed = ALLOWED.get(method)
    if not enforced or needed is None:
        return None
    short = method.removeprefix("/quota.v1.")
    grant = caller.grant
    if grant is None:
        return f"identity {caller.name!r} has no roles in the access file"
    roles = grant.roles & needed
    if not roles:
        held = ", ".join(sorted(grant.roles)) or "none"
        return f"identity {caller.name!r} (roles: {held}) may not call {short}: it needs {_either(needed)}"
    if roles == {SPENDER}:
        refused = sorted({b for b in budget_ids if not grant.may_spend(b)})
        if refused:
            return (
                f"identity {caller.name!r} may not spend budget {refused[0]!r}"
                f" (its budgets: {', '.join(grant.budgets)})"
            )
    return None


def may_be_agent(caller: Caller, agent_id: str) -> str | None:
    """Why ``caller`` may not open a session as ``agent_id``, or None: an identified caller only
    ever speaks for the agent its identity names."""
    if caller.via == "none" or caller.name == agent_id:
        return None
    return f"identity {caller.name!r} may open a session only as agent {caller.name!r}, not {agent_id!r}"


def _either(roles: frozenset[Role]) -> str:
    names = sorted(roles)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def token_digest(token: str) -> str:
    """What the access file keeps of a token: its SHA-256, in hex (the token itself never)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_policy(text: str, source: str = "access file") -> AccessPolicy:
    """An AccessPolicy from the TOML text of an access file (see README, "Security")."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccessFileError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"identities", "tokens"}
    if unknown:
        raise AccessFileError(f"{source}: unknown section {sorted(unknown)[0]!r} (identities, tokens)")
    identities = data.get("identities", {})
    if not isinstance(identities, dict) or not identities:
        raise AccessFileError(f"{source}: [identities] must name at least one identity")
    grants = {name: _grant(source, name, entry) for name, entry in identities.items()}
    tokens = _tokens(source, data.get("tokens", {}))
    policy = AccessPolicy(grants, tokens)
    for digest, name in tokens.items():
        if policy.grant_for(name) is None:
            raise AccessFileError(
                f"{source}: tokens.{digest[:12]}…: identity {name!r} is not in [identities]"
            )
    return policy


def _grant(source: str, name: object, entry: object) -> Grant:
    where = f"{source}: identities.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name.removesuffix("*")):
        raise AccessFileError(
            f"{where}: an identity is 1-128 letters, digits, '.', '_', ':', '@', '-' (a trailing '*' makes"
            " it a prefix)"
        )
    if not isinstance(entry, dict):
        raise AccessFileError(f'{where}: must be a table, e.g. roles = ["reader"]')
    unknown = set(entry) - {"roles", "budgets"}
    if unknown:
        raise AccessFileError(f"{where}: unknown key {sorted(unknown)[0]!r} (roles, budgets)")
    roles_raw = entry.get("roles")
    if not isinstance(roles_raw, list) or not roles_raw:
        raise AccessFileError(f"{where}: roles must be a non-empty list of {', '.join(Role)}")
    roles = set()
    for r in roles_raw:
        if r not in set(Role):
            raise AccessFileError(f"{where}: unknown role {r!r} ({', '.join(Role)})")
        roles.add(Role(r))
    budgets_raw = entry.get("budgets", [])
    if not isinstance(budgets_raw, list) or not all(isinstance(b, str) for b in budgets_raw):
        raise AccessFileError(f"{where}: budgets must be a list of budget ids or prefixes ending in '*'")
    for b in budgets_raw:
        _check_budget_pattern(where, b)
    if SPENDER in roles and not budgets_raw:
        raise AccessFileError(f'{where}: a spender must name its budgets (budgets = ["*"] for every budget)')
    if budgets_raw and SPENDER not in roles:
        raise AccessFileError(f"{where}: budgets limit a spender; this identity is not one")
    return Grant(frozenset(roles), tuple(budgets_raw))


def _check_budget_pattern(where: str, pattern: str) -> None:
    if pattern == "*":
        return
    stem = pattern.removesuffix("*")
    try:
        check_budget_id(stem)
    except InvalidInput as exc:
        raise AccessFileError(f"{where}: budgets entry {pattern!r}: {exc}") from None


def _tokens(source: str, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise AccessFileError(
            f'{source}: [tokens] maps the SHA-256 of a token to an identity: "<hex>" = "name"'
        )
    tokens = {}
    for digest, name in raw.items():
        if not _SHA256.fullmatch(digest):
            raise AccessFileError(
                f"{source}: tokens: {digest[:16]!r}… is not a SHA-256 in lowercase hex; the file keeps the"
                " token's digest, never the token (quota-center token makes one)"
            )
        if not isinstance(name, str):
            raise AccessFileError(f"{source}: tokens.{digest[:12]}…: the identity must be a string")
        tokens[digest] = name
    return tokens
