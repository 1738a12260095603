#!/usr/bin/env bash
# Fleet status benchmark (docs/benchmarks.md, "Backup objectives"), on release builds and a throwaway
# PostgreSQL: DEVICES simulated standalone devices (500) are backed up ROUNDS times (3; each device's
# configuration changed between rounds, so each round stores new files), then `rampart backups status`
# (every device's last good backup against its objective: one inventory call, one query) runs RUNS times
# (20) end to end through the CLI: p50/p90/max wall time.
#   dev/bench-status.sh [DEVICES (500)] [ROUNDS (3)] [RUNS (20)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
devices=${1:-500}
rounds=${2:-3}
runs=${3:-20}
# shellcheck source=dev/bench-lib.sh
. "$root/dev/bench-lib.sh"

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/storage" --dir "$work/storage"
bg "$bin/backup-worker" --prune-interval-seconds 0 --concurrency 16
until_ok "$bin/rampart" jobs list --timeout 1
"$bin/device-agent" fleet --dir "$work/fleet" --generate --standalone "$devices" --config-size 16KiB --prepare-only >&2
names=$(python3 -c 'import json,sys; print(" ".join(d["name"] for d in json.load(open(sys.argv[1]))["devices"]))' "$work/fleet/fleet.json")
# shellcheck disable=SC2086 # one argument per device name
"$bin/rampart" keys add "$RAMPART_KEYS" --role device $names >/dev/null
bg "$bin/device-agent" fleet --dir "$work/fleet" --spec "$work/fleet/fleet.json" --register
connected() { [ "$("$bin/rampart" devices list --output json --timeout 10 | grep -o '"connected":true' | wc -l)" -ge "$devices" ]; }
for _ in $(seq 1200); do connected && break; sleep 0.5; done
for round in $(seq "$rounds"); do
    if [ "$round" -gt 1 ]; then
        for name in $names; do "$bin/device-agent" change-config --dir "$work/fleet" "$name" --location "round $round" >/dev/null; done
        sleep 1
    fi
    started=$(date +%s.%N)
    "$bin/rampart" backup start all --wait --timeout 600 >/dev/null || true
    echo "round $round: backup start all took $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s" >&2
done
records=$("$bin/rampart" backups list --limit 10000 --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["backups"]))')

echo "== rampart backups status: $devices devices, $records backup records ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin/rampart" backups status | tail -n 3
python3 - "$bin/rampart" "$runs" <<'PY'
import statistics, subprocess, sys, time
rampart, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    start = time.monotonic()
    subprocess.run([rampart, "backups", "status", "--output", "json"], check=True, stdout=subprocess.DEVNULL)
    times.append((time.monotonic() - start) * 1000)
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"wall time per status, ms: p50 {pick(0.5):.1f}  p90 {pick(0.9):.1f}  max {times[-1]:.1f}  (mean {statistics.mean(times):.1f})")
PY
