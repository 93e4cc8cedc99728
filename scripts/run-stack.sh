#!/usr/bin/env bash
# Run the quota center locally on its own Redis and PostgreSQL.
#
#   scripts/run-stack.sh           start Redis + PostgreSQL if needed, then `quota-center serve`
#                                  in the foreground (Ctrl-C stops the center only)
#   scripts/run-stack.sh services  start Redis + PostgreSQL only and print the env to use them
#   scripts/run-stack.sh stop      stop the Redis + PostgreSQL this script started (data is kept)
#   scripts/run-stack.sh clean     stop them and delete their data (.stack/)
#
# The servers are private ones in .stack/ on 127.0.0.1:6390 (Redis) and :5440 (PostgreSQL), so
# system services on 6379/5432 are never touched; a server already answering there is reused.
# Both keep their data between runs (Redis with an append-only file) so Redis and the ledger agree.
# Starting and stopping them is `python -m devstack services|stop|clean` (see its --help).
#
# STACK_TLS=1 (make run STACK_TLS=1) serves mutual TLS with the access file: a throwaway CA, the
# server's and an "admin" client certificate are made in .stack/pki (python -m devstack certs),
# and the sample commands below carry quotactl's --ca/--cert/--key. Without it the center serves
# plaintext with no access control, and says so in a warning.
#
# Env: QUOTA_CENTER_REDIS_URL / QUOTA_CENTER_DATABASE_URL use existing servers instead;
#      QUOTA_CENTER_GRPC_PORT (50051), QUOTA_CENTER_METRICS_PORT (9464);
#      STACK_REDIS_PORT (6390), STACK_PG_PORT (5440), STACK_DIR (.stack).
set -euo pipefail

# shellcheck source=scripts/install-deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh"
cd "$REPO_ROOT"

export STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"

main() {
    install_deps

    case "${1:-serve}" in
    services | stop | clean)
        exec "$VENV/bin/python" -m devstack "$1"
        ;;
    serve) ;;
    *) die "usage: scripts/run-stack.sh [serve|services|stop|clean]" ;;
    esac

    local exports
    exports="$("$VENV/bin/python" -m devstack services)" || exit
    eval "$exports"
    export QUOTA_CENTER_GRPC_PORT="${QUOTA_CENTER_GRPC_PORT:-50051}"
    export QUOTA_CENTER_METRICS_PORT="${QUOTA_CENTER_METRICS_PORT:-9464}"
    local ctl=".venv/bin/quotactl --target localhost:$QUOTA_CENTER_GRPC_PORT" transport="plaintext, no access control"
    local identity=""
    if [[ "${STACK_TLS:-0}" == 1 ]]; then
        exports="$("$VENV/bin/python" -m devstack certs)" || exit
        eval "$exports"
        transport="mutual TLS, access file $QUOTA_CENTER_ACCESS_FILE"
        identity="
  export QUOTACTL_CA=$QUOTACTL_CA QUOTACTL_CERT=$QUOTACTL_CERT QUOTACTL_KEY=$QUOTACTL_KEY"
    fi
    cat <<EOT

Quota center
  gRPC     localhost:$QUOTA_CENTER_GRPC_PORT ($transport)
  metrics  http://localhost:$QUOTA_CENTER_METRICS_PORT/metrics
  Redis    $QUOTA_CENTER_REDIS_URL
  ledger   $QUOTA_CENTER_DATABASE_URL

Try, from another terminal in $REPO_ROOT:$identity
  $ctl create coupons-eu --unit EUR-cent --total 100000
  $ctl deduct coupons-eu 250 --request-id order-1
  $ctl return coupons-eu 100 --deduction-id order-1 --request-id refund-1
  $ctl get coupons-eu
  $ctl audit coupons-eu

Ctrl-C stops the center; 'scripts/run-stack.sh stop' (make stop) then stops Redis and PostgreSQL.

EOT
    exec .venv/bin/quota-center serve
}

main "$@"
