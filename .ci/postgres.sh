#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on loopback, for the tests that run when CDS_TEST_DATABASE_URL is set.
#
#   url=$(bash .ci/postgres.sh start DIR)   # initdb into DIR (created if missing), start, create a database,
#                                           # print postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/cds_test
#   bash .ci/postgres.sh stop DIR           # stop the cluster and delete DIR
#
# The server runs as a non-root user (PostgreSQL refuses root): the current user, or, when run as
# root, the user $CDS_CI_PG_USER (default cdsci), created if missing. The binaries come from
# $PG_BIN (default /usr/lib/postgresql/15/bin); when they are missing and we are root, Debian's
# postgresql-15 package is installed (without its default cluster).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=${CDS_CI_PG_USER:-cdsci}
DB_NAME=cds_test

log() { echo "postgres.sh: $*" >&2; }

as_owner() {  # run a command as the cluster's owner (from /, which it can enter; paths are absolute)
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}

ensure_binaries() {
    [ -x "$PG_BIN/initdb" ] && return
    if [ "$(id -u)" -ne 0 ]; then
        log "no PostgreSQL binaries in $PG_BIN, and not root to install postgresql-15"; exit 1
    fi
    log "installing postgresql-15 from apt"
    mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >&2
}

ensure_user() {
    [ "$(id -u)" -eq 0 ] || { PG_USER=$(id -un); return; }
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local dir=$1
    ensure_binaries
    ensure_user
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir"
    chmod 700 "$dir"
    as_owner test -w "$dir" || { log "$PG_USER cannot reach $dir (is a parent folder private?)"; exit 1; }
    local password port
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" > "$dir/pwfile"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir/pwfile"
    as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/pwfile"
    mkdir -p "$dir/socket"
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir/socket"
    for attempt in 1 2 3; do
        port=$(free_port)
        if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/socket -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            break
        fi
        log "start on port $port failed (attempt $attempt)"; tail -5 "$dir/server.log" >&2 || true
        [ "$attempt" -eq 3 ] && exit 1
    done
    echo "$port" > "$dir/port"
    as_owner "$PG_BIN/createdb" -h "$dir/socket" -p "$port" -U "$PG_USER" "$DB_NAME"
    log "cluster in $dir, listening on 127.0.0.1:$port"
    echo "postgresql+psycopg://$PG_USER:$password@127.0.0.1:$port/$DB_NAME"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/data/postmaster.pid" ]; then
        [ "$(id -u)" -eq 0 ] && PG_USER=$(stat -c %U "$dir/data")
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || log "pg_ctl stop failed"
    fi
    rm -rf "$dir"
    log "cluster in $dir stopped and removed"
}

case "${1:-}" in
    start) start "${2:?usage: postgres.sh start DIR}" ;;
    stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
    *) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
