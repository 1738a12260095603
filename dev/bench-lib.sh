# Shared start-up of the benchmark scripts (source it after setting `root`): a release build (BUILD=debug
# for the debug one; BENCH_SCRATCH_PATH=DIR to build in DIR), a work folder removed at exit with everything started in it
# (newest first, 10 s each to end gracefully), a throwaway PostgreSQL, free endpoints, CURVE keys, and
# `bg` / `until_ok` helpers. Sets: bin, work, pids, RAMPART_* (database, bus, events, keys, log level).
build=(swift build -c "${BUILD:-release}")
if [ -n "${BENCH_SCRATCH_PATH:-}" ]; then build+=(--scratch-path "$BENCH_SCRATCH_PATH"); fi
"${build[@]}" >&2
bin=$("${build[@]}" --show-bin-path)
work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
bench_cleanup() {
    set +e
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[$i]}
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    "$root/dev/pg.sh" stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
RAMPART_DATABASE_URL=$(PG_FAST=1 "$root/dev/pg.sh" start "$work/pg" $((30000 + RANDOM % 10000)) 2>/dev/null | tail -n 1)
export RAMPART_DATABASE_URL
export RAMPART_BUS="tcp://127.0.0.1:$((40000 + RANDOM % 10000))"
export RAMPART_EVENTS_LISTEN="tcp://127.0.0.1:$((50000 + RANDOM % 10000))"
export RAMPART_STORAGE_HTTP_PORT=0
export RAMPART_LOG_LEVEL=warning
# CURVE keys for every process (docs/security.md); the CLI calls as operators/admin.
"$bin/rampart" keys init "$work/keys" >/dev/null
export RAMPART_KEYS="$work/keys"
# bg CMD ARGS…: runs CMD in the background, logging to $work/<its name>.log, stopped at exit.
bg() { "$@" >>"$work/$(basename "$1").log" 2>&1 & pids+=($!); }
# until_ok CMD ARGS…: retries CMD every 0.1 s for a minute.
until_ok() { for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }
