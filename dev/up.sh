#!/usr/bin/env bash
# Brings Rampart up on the embedded default and shows it working:
#   installs missing Debian packages, builds, starts a throwaway PostgreSQL in .rampart/pg, starts the
#   bus, two inventory instances, storage (with its HTTP download endpoint), link-signer, the restore
#   coordinator, the notifier (webhooks, docs/notifications.md), two backup workers and a simulated fleet (dev/fleet.json: a standalone device, an HA pair, a 3-node cluster,
#   virtual devices; logs in .rampart/logs), lists it through the CLI, backs it all up, exports signed
#   download links for the HA pair as CSV and downloads one with curl, changes a device's configuration and
#   shows the diff of its next backup, and drills the HA pair's backups. Stop everything with dev/down.sh.
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

# CURVE keys (docs/security.md): every process finds its own in .rampart/keys (RAMPART_KEYS); the CLI
# uses operators/admin.key. Made once; device keys for the fleet are added when missing.
export RAMPART_KEYS="$state/keys"
if [ ! -f "$RAMPART_KEYS/broker.key" ]; then
    echo "== keys (.rampart/keys)"
    rampart keys init "$RAMPART_KEYS" --operator admin --operator viewer:viewer
fi
fleet_devices=$(python3 -c 'import json,sys; print(" ".join(d["name"] for d in json.load(open(sys.argv[1]))["devices"]))' "$root/dev/fleet.json")
missing=$(for name in $fleet_devices; do [ -f "$RAMPART_KEYS/devices/$name.key" ] || echo "$name"; done)
# Key folders made before the notifier existed have no key for it.
[ -f "$RAMPART_KEYS/services/notifier.key" ] || rampart keys add "$RAMPART_KEYS" --role service notifier >/dev/null
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one argument per device name
    rampart keys add "$RAMPART_KEYS" --role device $missing >/dev/null
fi

echo "== services"
start bus bus --listen "$RAMPART_BUS"
wait_for "the bus" rampart bus status --timeout 1
start inventory-1 inventory --instance-id inventory-1
start inventory-2 inventory --instance-id inventory-2
wait_for "the inventory" rampart devices list --timeout 1

start storage storage --dir "$state/storage"
start link-signer link-signer --master-key "$state/link-signer/master.key"
start restore-coordinator restore-coordinator
start notifier notifier --master-key "$state/notifier/master.key"
start backup-worker-1 backup-worker --instance-id backup-worker-1
start backup-worker-2 backup-worker --instance-id backup-worker-2
# The simulated fleet (dev/fleet.json): a standalone device, an HA pair, a 3-node cluster, two virtual
# devices (VMware: supported; KVM: refused by rule B2). The agents register themselves with inventory.
start fleet device-agent fleet --dir "$state/fleet" --spec "$root/dev/fleet.json" --register
wait_for "the storage" rampart storage verify --sample 1 --timeout 1
wait_for "the backup service" rampart jobs list --timeout 1
wait_for "the link-signer" rampart links keys list --timeout 1
wait_for "the restore coordinator" rampart restore status --timeout 1
wait_for "the notifier" rampart notify list --timeout 1
fleet_connected() {
    [ "$(rampart devices list --output json --timeout 1 | grep -o '"connected":true' | wc -l)" -ge 8 ]
}
wait_for "the fleet" fleet_connected

echo "== bus (CURVE: every connection authenticated by its key and encrypted)"
rampart bus status
echo "   a viewer key may read but not change:"
RAMPART_KEY="$RAMPART_KEYS/operators/viewer.key" rampart devices unregister fw-edge-1 2>&1 | sed 's/^/   /' || true
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
echo "== back up everything now (rule B3), following each target (B13)"
rampart backup start all --wait || true
echo
echo "== stored backups (B6)"
rampart backups list
echo
echo "== Export Backup Links (L2): signed URLs for the HA pair, valid 2 hours, as CSV"
rampart links export --ha-pair ha-dc1 --valid 2h --csv "$state/links.csv" --force  # this run's links replace the last run's
read -r url stored < <(rampart links export --ha-pair ha-dc1 --valid 10m --output json \
    | python3 -c 'import json, sys; link = json.load(sys.stdin)["links"][0]; print(link["url"], link["sha256"])')
downloaded=$(curl -fsS "$url" | sha256sum | cut -c1-64)
if [ "$downloaded" = "$stored" ]; then
    echo "   curl of one URL: SHA-256 $downloaded, the stored one"
else
    echo "   curl of one URL: SHA-256 $downloaded, but the stored one is $stored" >&2
    exit 1
fi
echo
echo "== what changed (P17; docs/config-diff.md): an operator moves fw-edge-1 and adds an access rule, then it is backed up again"
"$bin/device-agent" change-config --dir "$state/fleet" fw-edge-1 --location "dc-1 rack $((RANDOM % 40 + 1))" \
    --add-access-rule "allow-ops-$(date +%s)"
sleep 1  # a job's time is its files' name (whole seconds)
rampart backup start fw-edge-1 --wait >/dev/null
rampart backups diff fw-edge-1
echo
echo "== would it restore (P18; docs/drills.md): the HA pair's latest backups restored onto throwaway replacements"
rampart drill pair:ha-dc1 || true
echo
echo "== schedules (B4: a weekly one from the start)"
rampart schedules list
echo
echo "== webhooks (P15: add one with 'rampart notify add URL --topic backup.job.failed'; docs/notifications.md)"
rampart notify list
echo
echo "== the first events of the journal"
rampart events tail --since 0 --count 5
echo
echo "Rampart is up: RAMPART_BUS=$RAMPART_BUS; try '$bin/rampart --help'. Stop it with dev/down.sh."
