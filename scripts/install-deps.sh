#!/usr/bin/env bash
# Install what the tests and the local stack need. Idempotent: a second run changes nothing.
#
#   - Debian packages redis-server and postgresql, only when their binaries are missing. Only the
#     binaries matter: tests and run-stack.sh start servers of their own, never the system ones.
#   - Run as a script (scripts/test.sh, `make deps`), also Debian packages prometheus (for
#     promtool) and chromium, when missing: the monitoring rules' and the Locust web UI's tests use
#     them. The local stack (run-stack.sh, which sources this file) does without.
#   - .venv (python3 >= 3.11) with the project installed editable, extras dev, loadtest, chart and
#     webui.
#
# Sourced (by run-stack.sh) it only defines the functions.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Highest /usr/lib/postgresql/<version>/bin that has initdb (Debian keeps it off PATH), else PATH.
pg_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" ]] && best="$(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -n1)"
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null; then
        best="$(dirname "$(command -v initdb)")"
    fi
    printf '%s' "$best"
}

# $1 = tests: also what only the tests use.
install_debian_packages() {
    local -a missing=()
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        missing+=(redis-server)
    fi
    [[ -n "$(pg_bindir)" ]] || missing+=(postgresql)
    if [[ "${1:-}" == tests ]]; then
        # promtool checks the monitoring rules and a live scrape; chromium drives the Locust web UI.
        command -v promtool >/dev/null || missing+=(prometheus)
        [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    fi
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null && [[ ! -x "$VENV/bin/python" ]]; then
        missing+=(python3-venv)
    fi
    ((${#missing[@]})) || return 0

    [[ "$(id -u)" == 0 ]] || die "missing Debian packages: ${missing[*]}; as root run: apt-get install ${missing[*]}"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    say "installing Debian packages: ${missing[*]}"
    # Keep the packages' maintainer scripts from starting system servers that nothing here uses:
    # they would only hold ports 6379/5432 and memory. Our own policy file is removed afterwards.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
    } </dev/null || rc=$?
    [[ -z "$added_policy" ]] || rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
}

install_venv() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "python3 is $(python3 -V 2>&1); the project needs Python >= 3.11"
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    # pip resolves against the index even when all is installed (slow): skip while pyproject.toml
    # and the interpreter are what the last successful install saw.
    local stamp="$VENV/.install-stamp" want
    want="$(cat "$REPO_ROOT/pyproject.toml" <("$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    say "installing the project into $VENV (editable, extras dev, loadtest, chart and webui)"
    (cd "$REPO_ROOT" && PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --no-input \
        -e '.[dev,loadtest,chart,webui]' </dev/null)
    printf '%s\n' "$want" >"$stamp"
}

# $1 = tests (scripts/test.sh, `make deps`): with the Debian packages only the tests use.
install_deps() {
    install_debian_packages "${1:-}"
    install_venv
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    install_deps tests
fi
