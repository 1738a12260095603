#!/usr/bin/env bash
# A large fleet at rest (docs/benchmarks.md): bus, inventory and a generated fleet of DEVICES standalone
# devices on a release build and a throwaway PostgreSQL; once every device is connected and 10 s have
# passed, the CPU time of the broker, the fleet and inventory over 30 s (/proc/PID/stat).
#   dev/bench-idle.sh [DEVICES (1100)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
devices=${1:-1100}
# shellcheck source=dev/bench-lib.sh
. "$root/dev/bench-lib.sh"
bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"; bus=${pids[-1]}
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"; inv=${pids[-1]}
until_ok "$bin/rampart" devices list --timeout 1
"$bin/device-agent" fleet --dir "$work/fleet" --generate --standalone "$devices" --config-size 16KiB --prepare-only >/dev/null
"$bin/rampart" keys add "$RAMPART_KEYS" --role device \
    $(python3 -c 'import json,sys; print(" ".join(d["name"] for d in json.load(open(sys.argv[1]))["devices"]))' "$work/fleet/fleet.json") >/dev/null
bg "$bin/device-agent" fleet --dir "$work/fleet" --spec "$work/fleet/fleet.json" --register; fleet=${pids[-1]}
for i in $(seq 1 120); do
  sleep 2
  n=$("$bin/rampart" devices list --output json --timeout 10 2>/dev/null | grep -o '"connected":true' | wc -l || true)
  [ "$n" -ge "$devices" ] && break
done
echo "connected=$n after ~$((i*2)) s"
sleep 10
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)
b0=$(ticks $bus); f0=$(ticks $fleet); i0=$(ticks $inv)
sleep 30
b1=$(ticks $bus); f1=$(ticks $fleet); i1=$(ticks $inv)
python3 -c "
hz=$hz
print('broker  %.1f %% of a core' % (100.0*($b1-$b0)/hz/30))
print('fleet   %.1f %% of a core' % (100.0*($f1-$f0)/hz/30))
print('inventory %.1f %% of a core' % (100.0*($i1-$i0)/hz/30))
"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
