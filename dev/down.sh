#!/usr/bin/env bash
# Stops what dev/up.sh started: the services (SIGTERM, then SIGKILL after 10 s), the replacement appliances
# of docs/rma.md (.rampart/rma/*.pid) and the embedded PostgreSQL.
#   dev/down.sh [--purge]   --purge also deletes .rampart/ (database and logs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.rampart"
for pidfile in "$state"/rma/*.pid "$state"/pids/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "stopped $(basename "$pidfile" .pid)"
    fi
    rm -f "$pidfile"
done
[ -d "$state/pg" ] && "$root/dev/pg.sh" stop "$state/pg"
if [ "${1:-}" = "--purge" ]; then rm -rf "$state"; echo "removed .rampart/"; fi
