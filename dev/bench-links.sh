#!/usr/bin/env bash
# Export Backup Links benchmark (L2, docs/benchmarks.md), on release builds and a throwaway PostgreSQL:
#   1. signing and checking rate in process (bus-bench --sign-links 10000);
#   2. end to end: a device with SIZE of configuration is backed up, `rampart links export` signs a URL
#      for it through link-signer, and dev/bench-download.sh times curl on that URL (storage: link-signer
#      VerifyLink, then the decrypting stream) against reading the same plain bytes.
#   dev/bench-links.sh [SIZE (200MiB)]
# BENCH_PROFILE=FILE: afterwards, `perf record -g` of the storage process while it serves 20 warm
# downloads of the URL, written to FILE (read it with `perf report -i FILE`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
size=${1:-200MiB}
swift build -c release >&2
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/rampart-bench-links.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$root/dev/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== signing in process"
"$bin/bus-bench" --sign-links 10000

export RAMPART_DATABASE_URL=$(PG_FAST=1 "$root/dev/pg.sh" start "$work/pg" $((30000 + RANDOM % 10000)) 2>/dev/null | tail -n 1)
export RAMPART_BUS="tcp://127.0.0.1:$((40000 + RANDOM % 10000))"
export RAMPART_EVENTS_LISTEN="tcp://127.0.0.1:$((50000 + RANDOM % 10000))"
export RAMPART_STORAGE_HTTP_PORT=$((20000 + RANDOM % 10000))
export RAMPART_LINK_BASE_URL="http://127.0.0.1:$RAMPART_STORAGE_HTTP_PORT"
export RAMPART_LOG_LEVEL=warning
# CURVE keys for every process (docs/security.md); the CLI and bus-bench call as operators/admin.
"$bin/rampart" keys init "$work/keys" --device bench-fw >/dev/null
export RAMPART_KEYS="$work/keys"
bg() { "$@" >>"$work/$(basename "$1").log" 2>&1 & pids+=($!); }
until_ok() { for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $*" >&2; exit 1; }

bg "$bin/bus" --listen "$RAMPART_BUS" --publish "$RAMPART_EVENTS_LISTEN"
until_ok "$bin/rampart" bus status --timeout 1
bg "$bin/inventory"
bg "$bin/storage" --dir "$work/storage"
storage_pid=$!
bg "$bin/link-signer" --master-key "$work/link-signer.key"
bg "$bin/backup-worker" --prune-interval-seconds 0
until_ok "$bin/rampart" links keys list --timeout 1
echo "== preparing a device with $size of configuration" >&2
"$bin/device-agent" init --dir "$work/device" --name bench-fw --serial BENCH0001 --model FPR-3120 --platform physical \
    --software 7.4.1 --patch 2 --network-modules 1 --interface 1GbE-RJ45=8 --management-ip 192.0.2.99 --config-size "$size" >&2
bg "$bin/device-agent" run --dir "$work/device" --register
until_ok "$bin/rampart" devices show bench-fw --timeout 1
"$bin/rampart" backup start bench-fw --wait --timeout 600 >&2
backup=$("$bin/rampart" backups list --owner bench-fw --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][0]["id"])')
"$bin/rampart" backups download "$backup" -o "$work/plain.tar" >&2
start=$(date +%s.%N)
url=$("$bin/rampart" links export "$backup" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["links"][0]["url"])')
end=$(date +%s.%N)
python3 -c "import sys; print(f'one export through link-signer (CLI start included): {float(sys.argv[2])-float(sys.argv[1]):.3f} s')" "$start" "$end"
echo "== download over a signed URL"
"$root/dev/bench-download.sh" "$url" "$work/plain.tar"

if [ -n "${BENCH_PROFILE:-}" ]; then
    echo "== perf record -g of storage during 20 warm downloads -> $BENCH_PROFILE"
    perf record -g -F 4999 -p "$storage_pid" -o "$BENCH_PROFILE" -- sleep 1000 >/dev/null 2>&1 &
    perf_pid=$!
    sleep 1
    for _ in $(seq 20); do curl -s -S -f -o /dev/null "$url"; done
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
