"""quotactl over TLS to a real center with the access file on (README, "Security"): a client
certificate or a bearer token is the caller's identity; what it may not do exits 7."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.center import CenterThread
from tests.helpers.fake_center import Run
from tests.helpers.tls import OPS_TOKEN, Tls


def _as(tls: Tls, identity: str) -> list[str]:
    mine = tls.pki.client(identity)
    return ["--ca", str(tls.pki.ca_cert), "--cert", str(mine.cert), "--key", str(mine.key)]


def test_a_certificate_is_the_caller_s_identity(
    run: Run, tls: Tls, secure_center: CenterThread, budget_id: str
) -> None:
    target = ["--target", secure_center.target]
    code, out, err = run(
        *target, *_as(tls, "tester"), "create", budget_id, "--unit", "EUR-cent", "--total", "100"
    )
    assert code == 0, err
    code, out, err = run(*target, *_as(tls, "watcher"), "top-up", budget_id, "5", "--request-id", "t1")
    assert code == 7, (out, err)
    assert "identity 'watcher' (roles: reader) may not call Admin/TopUp" in err
    code, out, err = run(*target, *_as(tls, "watcher"), "--json", "get", budget_id)
    assert code == 0, err
    assert '"total": 100' in out
    # Plaintext to a TLS port: no connection.
    code, out, err = run(*target, "get", budget_id)
    assert code == 4, (out, err)


def test_a_bearer_token_on_the_token_port(
    run: Run, tls: Tls, secure_center: CenterThread, budget_id: str, tmp_path: Path
) -> None:
    assert secure_center.center is not None
    target = ["--target", f"127.0.0.1:{secure_center.center.token_port}", "--ca", str(tls.pki.ca_cert)]
    token = tmp_path / "token"
    token.write_text(OPS_TOKEN + "\n")
    code, out, err = run(
        *target, "--token-file", str(token), "create", budget_id, "--unit", "u", "--total", "9"
    )
    assert code == 0, err
    code, out, err = run(*target, "get", budget_id)  # TLS, but no identity
    assert code == 7, (out, err)
    assert "no identity" in err
    token.write_text("guessed")
    code, out, err = run(*target, "--token-file", str(token), "get", budget_id)
    assert code == 7, (out, err)
    assert "not one the access file knows" in err


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--token-file", "/dev/null"], "need --ca"),
        (["--ca", "{ca}", "--cert", "{ca}"], "--cert and --key go together"),
        (["--ca", "/nonexistent/ca.pem"], "--ca /nonexistent/ca.pem: No such file or directory"),
        (["--ca", "{ca}", "--token-file", "/nonexistent/t"], "--token-file /nonexistent/t: No such file"),
    ],
)
def test_tls_options_that_cannot_work_are_usage_errors(
    run: Run, tls: Tls, argv: list[str], error: str
) -> None:
    argv = [a.replace("{ca}", str(tls.pki.ca_cert)) for a in argv]
    code, out, err = run("--target", "127.0.0.1:1", *argv, "get", "b")
    assert code == 2, (out, err)
    assert error in err
