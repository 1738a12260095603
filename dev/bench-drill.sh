#!/usr/bin/env bash
# Restore drill benchmark (docs/benchmarks.md, "Restore drills"), on a throwaway PostgreSQL: a standalone
# device, an HA pair and a 3-node cluster (dev/fleet.json's fw-edge-1, ha-dc1, cl-dc2, 64 KiB of
# configuration each) are backed up once; then RUNS times each target is drilled alone with
# `rampart drill TARGET --output json`: the command's wall time (queueing, the worker's claim, storage
# reads, one `device-agent drill` child per device, CheckRestore, the result written, the CLI's polling)
# and each device's own drill time (`duration_ms`, from the first storage read to the last check).
#   dev/bench-drill.sh [RUNS (5)]
# BUILD=debug uses the debug build (default: release); BENCH_SCRATCH_PATH=DIR builds in DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-5}
build=(swift build -c "${BUILD:-release}")
if [ -n "${BENCH_SCRATCH_PATH:-}" ]; then build+=(--scratch-path "$BENCH_SCRATCH_PATH"); fi
"${build[@]}" >&2
bin=$("${build[@]}" --show-bin-path)
work=$(mktemp -d /tmp/rampart-bench-drill.XXXXXX)
pids=()
cleanup() {
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
trap cleanup EXIT
trap 'exit 130' INT TERM

export RAMPART_DATABASE_URL=$(PG_FAST=1 "$root/dev/pg.sh" start "$work/pg" $((30000 + RANDOM % 10000)) 2>/dev/null | tail -n 1)
export RAMPART_BUS="tcp://127.0.0.1:$((40000 + RANDOM % 10000))"
export RAMPART_EVENTS_LISTEN="tcp://127.0.0.1:$((50000 + RANDOM % 10000))"
export RAMPART_STORAGE_HTTP_PORT=0
export RAMPART_LOG_LEVEL=warning
python3 - "$root/dev/fleet.json" "$work/fleet.json" <<'PY'
import json, sys
fleet = json.load(open(sys.argv[1]))
keep = {"fw-edge-1", "fw-ha-a", "fw-ha-b", "cl-node-1", "cl-node-2", "cl-node-3"}
fleet["devices"] = [d for d in fleet["devices"] if d["name"] in keep]
json.dump(fleet, open(sys.argv[2], "w"))
PY
"$bin/rampart" keys init "$work/keys" --device fw-edge-1 --device fw-ha-a --device fw-ha-b \
    --device cl-node-1 --device cl-node-2 --device cl-node-3 >/dev/null
export RAMPART_KEYS="$work/keys"
bg() { "$@" >>"$work/$(basename "$1").log" 2>&1 & pids+=($!); }
until_ok() { for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/storage" --dir "$work/storage"
bg "$bin/restore-coordinator"
bg "$bin/backup-worker" --prune-interval-seconds 0 --device-agent "$bin/device-agent"
until_ok "$bin/rampart" devices list --timeout 1
until_ok "$bin/rampart" restore status --timeout 1
until_ok "$bin/rampart" jobs list --timeout 1
bg "$bin/device-agent" fleet --dir "$work/fleet" --spec "$work/fleet.json" --register
fleet_up() { [ "$("$bin/rampart" devices list --output json --timeout 2 | python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin)["devices"] if d.get("connected")))')" = 6 ]; }
until_ok fleet_up
"$bin/rampart" backup start fw-edge-1 pair:ha-dc1 cluster:cl-dc2 --wait --timeout 300 >&2

echo "== restore drills ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ${BUILD:-release} build; $runs runs per target)"
python3 - "$bin/rampart" "$runs" <<'PY'
import json, statistics, subprocess, sys, time
rampart, runs = sys.argv[1], int(sys.argv[2])
print("| target | devices | wall time per drill, ms (median, min–max) | per device, ms | device drill time, ms (median, min–max) |")
print("| --- | --- | --- | --- | --- |")
for target, label in [("fw-edge-1", "standalone"), ("pair:ha-dc1", "HA pair"), ("cluster:cl-dc2", "3-node cluster")]:
    walls, devices = [], []
    for _ in range(runs):
        start = time.monotonic()
        done = subprocess.run([rampart, "drill", target, "--output", "json", "--timeout", "120"], capture_output=True, text=True)
        walls.append((time.monotonic() - start) * 1000)
        if done.returncode != 0:
            sys.exit(f"rampart drill {target} exited {done.returncode}: {done.stdout}{done.stderr}")
        job = json.loads(done.stdout)
        drills = [d for t in job["tasks"] for d in t["drills"]]
        assert all(d["passed"] for d in drills), drills
        devices += [int(d["duration_ms"]) for d in drills]
        count = len(drills)
    print(f"| {label} | {count} | {statistics.median(walls):.0f} ({min(walls):.0f}–{max(walls):.0f}) | "
          f"{statistics.median(walls) / count:.0f} | {statistics.median(devices):.0f} ({min(devices)}–{max(devices)}) |")
PY
