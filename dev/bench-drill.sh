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
# shellcheck source=dev/bench-lib.sh
. "$root/dev/bench-lib.sh"
python3 - "$root/dev/fleet.json" "$work/fleet.json" <<'PY'
import json, sys
fleet = json.load(open(sys.argv[1]))
keep = {"fw-edge-1", "fw-ha-a", "fw-ha-b", "cl-node-1", "cl-node-2", "cl-node-3"}
fleet["devices"] = [d for d in fleet["devices"] if d["name"] in keep]
json.dump(fleet, open(sys.argv[2], "w"))
PY
"$bin/rampart" keys add "$RAMPART_KEYS" --role device fw-edge-1 fw-ha-a fw-ha-b cl-node-1 cl-node-2 cl-node-3 >/dev/null

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
