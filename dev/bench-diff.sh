#!/usr/bin/env bash
# Configuration diff benchmark (docs/benchmarks.md, "Configuration diff"), on release builds and a throwaway
# PostgreSQL: a device with SIZE of configuration (1 MiB) is backed up, changed with `device-agent
# change-config` (location, an access rule, a rotated key), and backed up again; then `rampart backups diff
# DEVICE` runs RUNS times (100) end to end through the CLI (process start, two bus calls, storage decrypting
# and comparing both backups, the diff printed): p50/p90/p99/max wall time; and once more with --output json
# to report what was compared.
#   dev/bench-diff.sh [RUNS (100)] [SIZE (1MiB)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-100}
size=${2:-1MiB}
# shellcheck source=dev/bench-lib.sh
. "$root/dev/bench-lib.sh"
"$bin/rampart" keys add "$RAMPART_KEYS" --role device bd-fw >/dev/null

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/storage" --dir "$work/storage"
bg "$bin/backup-worker" --prune-interval-seconds 0
until_ok "$bin/rampart" jobs list --timeout 1
"$bin/device-agent" init --dir "$work/device" --name bd-fw --serial BDIFF00001 --model FPR-3120 --platform physical \
    --software 7.4.1 --patch 2 --network-modules 1 --interface 1GbE-RJ45=8 --management-ip 192.0.2.60 --config-size "$size" >&2
bg "$bin/device-agent" run --dir "$work/device" --register
until_ok "$bin/rampart" devices show bd-fw --timeout 1
until_ok "$bin/rampart" backup start bd-fw --wait --timeout 120
"$bin/device-agent" change-config --dir "$work/device" --location "bench rack 2" --add-access-rule bench-rule \
    --rotate-key https-server >&2
# A job's time is its file name's (whole seconds): the second backup must not share the first one's second.
sleep 1
"$bin/rampart" backup start bd-fw --wait --timeout 120 >&2

echo "== rampart backups diff bd-fw: $size of configuration, $runs runs ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin/rampart" backups diff bd-fw --output json | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    files = ", ".join(f["path"] + ": " + f["summary"] for f in d["files"])
    print("compared", d["old_file_name"], "with", d["new_file_name"] + ":", len(d["files"]), "files changed (" + files + "),",
          d["unchanged"], "unchanged")'
# The floor: the CLI starting, connecting with CURVE and making one small call (`backups list --owner`, the
# diff's first call), timed the same way.
python3 - "$bin/rampart" "$runs" <<'PY'
import statistics, subprocess, sys, time
rampart, runs = sys.argv[1], int(sys.argv[2])
for label, command in [("diff", ["backups", "diff", "bd-fw"]), ("floor: backups list --owner", ["backups", "list", "--owner", "bd-fw"])]:
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([rampart, *command], check=True, stdout=subprocess.DEVNULL)
        times.append((time.monotonic() - start) * 1000)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"wall time per {label}, ms: p50 {pick(0.5):.1f}  p90 {pick(0.9):.1f}  p99 {pick(0.99):.1f}  max {times[-1]:.1f}  "
          f"(mean {statistics.mean(times):.1f})")
PY
