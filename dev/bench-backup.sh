#!/usr/bin/env bash
# Backup benchmark (docs/benchmarks.md): a generated fleet of N standalone devices with SIZE of
# configuration each, backed up with `rampart backup start all --wait` by 1 and then 2 workers, on a
# throwaway PostgreSQL and release builds. Prints wall time, devices/s, MB/s and p50/p99 per device.
#   dev/bench-backup.sh [DEVICES (500)] [SIZE (1MiB)] [WORKER_CONCURRENCY (8)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
devices=${1:-500}
size=${2:-1MiB}
concurrency=${3:-8}
swift build -c release >&2
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$root/dev/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export RAMPART_DATABASE_URL=$(PG_FAST=1 "$root/dev/pg.sh" start "$work/pg" $((30000 + RANDOM % 10000)) 2>/dev/null | tail -n 1)
export RAMPART_BUS="tcp://127.0.0.1:$((40000 + RANDOM % 10000))"
export RAMPART_EVENTS_LISTEN="tcp://127.0.0.1:$((50000 + RANDOM % 10000))"
# No HTTP endpoint: storage's default port (7480) may belong to a system already running here.
export RAMPART_STORAGE_HTTP_PORT=0
export RAMPART_LOG_LEVEL=warning
# CURVE keys for every process (docs/security.md); the CLI and bus-bench call as operators/admin.
"$bin/rampart" keys init "$work/keys" >/dev/null
export RAMPART_KEYS="$work/keys"
bg() { "$@" >>"$work/$(basename "$1").log" 2>&1 & pids+=($!); }
until_ok() { for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/storage" --dir "$work/storage"
until_ok "$bin/rampart" devices list --timeout 1
echo "preparing $devices devices with $size of configuration each" >&2
"$bin/device-agent" fleet --dir "$work/fleet" --generate --standalone "$devices" --config-size "$size" --prepare-only >&2
# shellcheck disable=SC2046 # one argument per device name
"$bin/rampart" keys add "$RAMPART_KEYS" --role device \
    $(python3 -c 'import json,sys; print(" ".join(d["name"] for d in json.load(open(sys.argv[1]))["devices"]))' "$work/fleet/fleet.json") >/dev/null
connected() { [ "$("$bin/rampart" devices list --output json --timeout 5 | grep -o '"connected":true' | wc -l)" -ge "$devices" ]; }

run() {
    local workers=$1
    local worker_pids=()
    for i in $(seq "$workers"); do
        "$bin/backup-worker" --instance-id "bench-$workers-$i" --concurrency "$concurrency" --prune-interval-seconds 0 \
            >>"$work/worker.log" 2>&1 &
        worker_pids+=($!)
        pids+=($!)
    done
    until_ok "$bin/rampart" jobs list --timeout 1
    local start end
    start=$(date +%s.%N)
    "$bin/rampart" backup start all --wait --output json --timeout 600 >"$work/job-$workers.json" || true
    end=$(date +%s.%N)
    job_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/job-$workers.json")
    "$bin/rampart" backups list --job "$job_id" --limit 100000 --output json >"$work/backups-$workers.json"
    python3 - "$work/job-$workers.json" "$start" "$end" "$workers" "$concurrency" "$work/backups-$workers.json" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
start, end, workers, conc = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
stored = sum(int(b["size"]) for b in json.load(open(sys.argv[6])).get("backups", []))
tasks = [t for t in job.get("tasks", []) if t.get("state") == "succeeded"]
durations = sorted((int(t["finished_unix_ms"]) - int(t["started_unix_ms"])) / 1000 for t in tasks)
wall = end - start
def pct(p): return durations[min(len(durations) - 1, int(len(durations) * p))] if durations else float("nan")
print(f"{workers} worker(s) x concurrency {conc}: {len(tasks)} devices in {wall:.1f} s = {len(tasks)/wall:.1f} devices/s, "
      f"{stored/wall/1e6:.1f} MB/s; per device p50 {pct(0.5):.2f} s, p99 {pct(0.99):.2f} s; job {job.get('state')}")
PY
    for pid in "${worker_pids[@]}"; do kill "$pid"; done
    wait "${worker_pids[@]}" 2>/dev/null || true
}

bg "$bin/device-agent" fleet --dir "$work/fleet" --spec "$work/fleet/fleet.json" --register
until_ok connected
bytes=$(du -sb "$work/fleet" | cut -f1)
echo "fleet up: $devices devices, $((bytes / 1048576)) MiB of device folders" >&2
run 1
run 2
stored=$(du -sb "$work/storage/objects" | cut -f1)
echo "storage holds $((stored / 1048576)) MiB of sealed objects"
