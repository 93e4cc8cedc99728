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
#
# Env: QUOTA_CENTER_REDIS_URL / QUOTA_CENTER_DATABASE_URL use existing servers instead;
#      QUOTA_CENTER_GRPC_PORT (50051), QUOTA_CENTER_METRICS_PORT (9464);
#      STACK_REDIS_PORT (6390), STACK_PG_PORT (5440), STACK_DIR (.stack).
set -euo pipefail

# shellcheck source=scripts/install-deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-deps.sh"
cd "$REPO_ROOT"

STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
REDIS_PORT="${STACK_REDIS_PORT:-6390}"
PG_PORT="${STACK_PG_PORT:-5440}"
REDIS_DIR="$STACK_DIR/redis"
PG_DIR="$STACK_DIR/postgres"
PG_DB=quota_center

# initdb/postgres refuse to run as root: run them as the postgres OS user then.
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

start_redis() {
    if redis_up; then
        say "Redis already answers on 127.0.0.1:$REDIS_PORT: reusing it"
        return
    fi
    mkdir -p "$REDIS_DIR"
    say "starting Redis on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
        --save "" --appendonly yes --daemonize yes \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
    local _
    for _ in $(seq 100); do
        redis_up && return
        sleep 0.1
    done
    tail -n 30 "$REDIS_DIR/redis.log" >&2 || true
    die "Redis did not start on 127.0.0.1:$REDIS_PORT (log above: $REDIS_DIR/redis.log)"
}

start_postgres() {
    if pg_up; then
        say "PostgreSQL already answers on 127.0.0.1:$PG_PORT: reusing it"
    else
        mkdir -p "$PG_DIR"
        if [[ "$(id -u)" == 0 ]]; then
            chown postgres: "$PG_DIR"
            chmod 700 "$PG_DIR"
            as_pg test -x "$PG_DIR" ||
                die "the postgres user cannot reach $PG_DIR; set STACK_DIR to a directory it can"
        fi
        if [[ ! -f "$PG_DIR/data/PG_VERSION" ]]; then
            say "creating a PostgreSQL cluster in $PG_DIR/data"
            as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
        fi
        say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        # -w waits until it accepts connections; the socket stays inside our dir, not /var/run.
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 -s \
            -o "-p $PG_PORT -k '$PG_DIR' -c listen_addresses=127.0.0.1" start ||
            { tail -n 30 "$PG_DIR/postgres.log" >&2 || true; die "PostgreSQL did not start (log above)"; }
    fi
    local psql=("$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]]; then
        "${psql[@]}" -c "CREATE DATABASE $PG_DB"
    fi
}

stop_services() {
    if [[ -f "$REDIS_DIR/redis.pid" ]] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null; then
        say "stopping Redis (127.0.0.1:$REDIS_PORT)"
        local pid _
        pid="$(cat "$REDIS_DIR/redis.pid")"
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [[ -f "$PG_DIR/data/postmaster.pid" ]]; then
        say "stopping PostgreSQL (127.0.0.1:$PG_PORT)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -s stop || true
    fi
}

start_services() {
    if [[ -n "${QUOTA_CENTER_REDIS_URL:-}" ]]; then
        say "using Redis at $QUOTA_CENTER_REDIS_URL"
    else
        start_redis
        export QUOTA_CENTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    fi
    if [[ -n "${QUOTA_CENTER_DATABASE_URL:-}" ]]; then
        say "using PostgreSQL at $QUOTA_CENTER_DATABASE_URL"
    else
        start_postgres
        export QUOTA_CENTER_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB"
    fi
}

main() {
    install_deps
    PG_BIN="$(pg_bindir)"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL binaries not found"

    case "${1:-serve}" in
    stop)
        stop_services
        return
        ;;
    clean)
        stop_services
        rm -rf "$STACK_DIR"
        return
        ;;
    services)
        start_services
        printf 'export QUOTA_CENTER_REDIS_URL=%q\nexport QUOTA_CENTER_DATABASE_URL=%q\n' \
            "$QUOTA_CENTER_REDIS_URL" "$QUOTA_CENTER_DATABASE_URL"
        return
        ;;
    serve) ;;
    *) die "usage: scripts/run-stack.sh [serve|services|stop|clean]" ;;
    esac

    start_services
    export QUOTA_CENTER_GRPC_PORT="${QUOTA_CENTER_GRPC_PORT:-50051}"
    export QUOTA_CENTER_METRICS_PORT="${QUOTA_CENTER_METRICS_PORT:-9464}"
    local ctl=".venv/bin/quotactl --target localhost:$QUOTA_CENTER_GRPC_PORT"
    cat <<EOF

Quota center
  gRPC     localhost:$QUOTA_CENTER_GRPC_PORT
  metrics  http://localhost:$QUOTA_CENTER_METRICS_PORT/metrics
  Redis    $QUOTA_CENTER_REDIS_URL
  ledger   $QUOTA_CENTER_DATABASE_URL

Try, from another terminal in $REPO_ROOT:
  $ctl create coupons-eu --unit EUR-cent --total 100000
  $ctl deduct coupons-eu 250 --request-id order-1
  $ctl return coupons-eu 100 --deduction-id order-1 --request-id refund-1
  $ctl get coupons-eu
  $ctl audit coupons-eu

Ctrl-C stops the center; 'scripts/run-stack.sh stop' (make stop) then stops Redis and PostgreSQL.

EOF
    exec .venv/bin/quota-center serve
}

main "$@"
