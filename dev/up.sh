#!/usr/bin/env bash
# Brings Rampart up on the embedded default and shows it working:
#   installs missing Debian packages, builds, starts a throwaway PostgreSQL in .rampart/pg, starts the
#   bus and two inventory instances (logs in .rampart/logs), registers a small fleet (a standalone
#   device, an HA pair, a 3-node cluster) and lists it through the CLI. Stop everything with dev/down.sh.
# Environment: RAMPART_BUILD=release for an optimised build; RAMPART_PG_PORT (default 54329);
#              RAMPART_BUS (default tcp://127.0.0.1:7400); RAMPART_EVENTS_LISTEN (default tcp://127.0.0.1:7401).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/.rampart"
mkdir -p "$state/logs" "$state/pids"

"$root/dev/setup.sh"
configuration=${RAMPART_BUILD:-debug}
echo "== building ($configuration)"
swift build -c "$configuration"
bin=$(swift build -c "$configuration" --show-bin-path)

echo "== PostgreSQL (embedded default, $state/pg)"
RAMPART_DATABASE_URL=$("$root/dev/pg.sh" start "$state/pg" "${RAMPART_PG_PORT:-54329}" | tail -n 1)
export RAMPART_DATABASE_URL
export RAMPART_BUS=${RAMPART_BUS:-tcp://127.0.0.1:7400}
export RAMPART_EVENTS_LISTEN=${RAMPART_EVENTS_LISTEN:-tcp://127.0.0.1:7401}

# start NAME EXECUTABLE ARGS...: starts it in the background unless its pid file names a live process.
start() {
    local name=$1 executable=$2
    shift 2
    local pidfile="$state/pids/$name.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "   $name already running (pid $(cat "$pidfile"))"
        return
    fi
    nohup "$bin/$executable" "$@" >>"$state/logs/$name.log" 2>&1 &
    echo $! >"$pidfile"
    echo "   $name started (pid $!, log .rampart/logs/$name.log)"
}

# wait_for WHAT COMMAND...: retries COMMAND for up to 30 s.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$what did not come up; see .rampart/logs/" >&2
    exit 1
}

rampart() { "$bin/rampart" "$@"; }

echo "== services"
start bus bus --listen "$RAMPART_BUS"
wait_for "the bus" rampart bus status --timeout 1
start inventory-1 inventory --instance-id inventory-1
start inventory-2 inventory --instance-id inventory-2
wait_for "the inventory" rampart devices list --timeout 1

if ! rampart devices show fw-edge-1 --timeout 2 >/dev/null 2>&1; then
    echo "== registering a small simulated fleet"
    register() { rampart devices register "$@" >/dev/null; }
    register fw-edge-1 --serial FCH2201A0E1 --model FPR-3120 --platform physical --software 7.4.1 --patch 2 \
        --network-modules 1 --interface 1GbE-RJ45=8 --interface 10GbE-SFP+=8 --management-ip 192.0.2.10
    register fw-ha-a --serial FCH2301B0A1 --model FPR-4215 --platform physical --software 7.4.2 \
        --network-modules 2 --interface 10GbE-SFP+=8 --interface 25GbE-SFP28=8 --management-ip 192.0.2.21
    register fw-ha-b --serial FCH2301B0A2 --model FPR-4215 --platform physical --software 7.4.2 \
        --network-modules 2 --interface 10GbE-SFP+=8 --interface 25GbE-SFP28=8 --management-ip 192.0.2.22
    rampart ha-pairs register ha-dc1 --primary fw-ha-a --secondary fw-ha-b >/dev/null
    for n in 1 2 3; do
        register "cl-node-$n" --serial "FLM24000CN$n" --model FPR-9300-SM-56 --platform native-instance \
            --software 7.6.0 --patch 1 --interface 40GbE-QSFP+=4 --management-ip "192.0.2.3$n"
    done
    rampart clusters register cl-dc2 --control cl-node-1 --data cl-node-2 --data cl-node-3 >/dev/null
    register ftdv-lab --serial 9A8B7C6D5E4 --model FTDv50 --platform virtual --hypervisor kvm --software 7.4.1 \
        --interface virtio=8 --management-ip 192.0.2.40
fi

echo "== bus"
rampart bus status
echo
echo "== devices"
rampart devices list
echo
echo "== HA pairs"
rampart ha-pairs list
echo
echo "== clusters"
rampart clusters list
echo
echo "== what can be backed up (rule B2)"
rampart devices support
echo
echo "== the first events of the journal"
rampart events tail --since 0 --count 5
echo
echo "Rampart is up: RAMPART_BUS=$RAMPART_BUS; try '$bin/rampart --help'. Stop it with dev/down.sh."
