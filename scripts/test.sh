#!/usr/bin/env bash
# `make test` and CI: install what is missing, lint, type-check, run the tests.
#
#   scripts/test.sh [PYTEST ARGS...]     e.g. scripts/test.sh tests/devstack -k redis
#
# Every check runs even after one failed, so a run reports all problems; the exit status is
# non-zero when any failed. pytest's own servers are throwaway ones (tests/conftest.py) unless
# REDIS_URL / DATABASE_URL are set.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export PATH="$PWD/.venv/bin:$PATH"

header() { printf '\n=== %s ===\n' "$*"; }

header "install dependencies"
bash scripts/install-deps.sh || { echo "FAILED: install dependencies" >&2; exit 1; }

failed=()
stage() {
    local name=$1
    shift
    header "$name"
    if "$@"; then
        return 0
    else
        local rc=$?
        failed+=("$name (exit $rc)")
    fi
}

stage "ruff check" ruff check .
stage "ruff format --check" ruff format --check .
stage "mypy" mypy
# The pyproject mypy run covers the packages (devstack included); the fixtures are typed strictly too.
stage "mypy tests/conftest.py" mypy --strict tests/conftest.py
# Any non-zero exit fails, including 5 (no tests collected).
stage "pytest" python -m pytest "$@"

header "summary"
if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all checks passed"
