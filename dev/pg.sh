#!/usr/bin/env bash
# Manages a throwaway PostgreSQL cluster for development and tests.
#
#   dev/pg.sh start DIR [PORT]   initdb DIR/data if needed, start the server (socket in DIR/sock);
#                                prints the libpq connection string as the last line of stdout.
#   dev/pg.sh stop DIR           stops the server (fast mode); succeeds when it is not running.
#   dev/pg.sh url DIR [PORT]     prints the libpq connection string.
#
# Environment: PG_FAST=1 turns fsync off and skips initdb's sync (throwaway data only).
#              PG_BIN overrides the binaries' folder (default /usr/lib/postgresql/15/bin).
# The server listens only on its Unix socket (listen_addresses=''), with trust authentication.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
DEFAULT_PORT=54329

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start DIR [PORT] | stop DIR | url DIR [PORT]" >&2
    exit 2
}

# Runs a command as the postgres user when we are root (initdb and postgres refuse to run as root).
as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Resolves DIR to an absolute path (creating it when asked); it need not exist otherwise.
absolute_dir() {
    local dir="$1" create="$2"
    [[ -n "$dir" ]] || die "DIR must not be empty"
    if [[ "$create" == yes ]]; then
        mkdir -p -- "$dir" || die "cannot create $dir"
    fi
    if [[ -e "$dir" && ! -d "$dir" ]]; then die "$dir is not a directory"; fi
    realpath -m -- "$dir"
}

# When root, the server runs as the postgres user, which must own DIR and be able to traverse every parent
# of it: under /tmp that already holds; for /work/main/.rampart/pg this adds o+x to /work, /work/main and
# /work/main/.rampart when they lack it (only the execute bit: nothing becomes listable or readable).
grant_access() {
    local dir="$1"
    [[ "$(id -u)" -eq 0 ]] || return 0
    id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server"
    chown postgres: -- "$dir"
    local parent
    parent="$(dirname -- "$dir")"
    while [[ "$parent" != "/" ]]; do
        if ! runuser -u postgres -- test -x "$parent"; then
            chmod o+x -- "$parent"
        fi
        parent="$(dirname -- "$parent")"
    done
}

validate_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)) || die "invalid port '$1'"
}

url() {
    echo "host=$1/sock port=$2 user=postgres dbname=postgres"
}

is_running() {
    [[ -f "$1/data/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

cmd_start() {
    local dir port
    dir="$(absolute_dir "$1" yes)"
    port="${2:-$DEFAULT_PORT}"
    validate_port "$port"
    [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL binaries not found in $PG_BIN (install postgresql or set PG_BIN)"
    grant_access "$dir"

    if is_running "$dir"; then
        echo "PostgreSQL in $dir is already running" >&2
        url "$dir" "$(running_port "$dir" "$port")"
        return 0
    fi

    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        echo "initialising a cluster in $dir/data" >&2
        local no_sync=()
        if [[ "${PG_FAST:-0}" == 1 ]]; then no_sync=(--no-sync); fi
        as_pg "$PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 "${no_sync[@]}" \
            >"$dir/initdb.log" 2>&1 ||
            die "initdb failed; see $dir/initdb.log"
    fi
    as_pg mkdir -p "$dir/sock"

    local fsync=on
    if [[ "${PG_FAST:-0}" == 1 ]]; then fsync=off; fi
    echo "starting PostgreSQL on port $port (socket $dir/sock, fsync=$fsync)" >&2
    if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
        -o "-p $port -k $dir/sock -c listen_addresses='' -c fsync=$fsync -c max_connections=200" \
        -w start >&2; then
        tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
        die "could not start PostgreSQL in $dir (log: $dir/postgres.log)"
    fi
    url "$dir" "$port"
}

# The port of a running server (from postmaster.pid line 4), else the one given.
running_port() {
    local p
    p="$(sed -n 4p "$1/data/postmaster.pid" 2>/dev/null || true)"
    if [[ "$p" =~ ^[0-9]+$ ]]; then echo "$p"; else echo "$2"; fi
}

cmd_stop() {
    local dir
    dir="$(absolute_dir "$1" no)"
    if ! is_running "$dir"; then
        echo "PostgreSQL in $dir is not running" >&2
        return 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || die "could not stop PostgreSQL in $dir"
}

cmd_url() {
    local dir port
    dir="$(absolute_dir "$1" no)"
    port="${2:-}"
    if [[ -z "$port" ]]; then port="$(running_port "$dir" "$DEFAULT_PORT")"; fi
    validate_port "$port"
    url "$dir" "$port"
}

[[ $# -ge 2 ]] || usage
command="$1"
shift
case "$command" in
    start) [[ $# -le 2 ]] || usage; cmd_start "$@" ;;
    stop) [[ $# -eq 1 ]] || usage; cmd_stop "$@" ;;
    url) [[ $# -le 2 ]] || usage; cmd_url "$@" ;;
    *) usage ;;
esac
