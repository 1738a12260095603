#!/usr/bin/env bash
# Storage ingest benchmark (docs/benchmarks.md): one large object uploaded to a real `storage` over the
# bus in 1 MiB chunks, against `sha256sum` and `openssl speed -evp aes-256-gcm` on the same machine.
#   dev/bench-storage.sh [MiB (200)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
size=${1:-200}
swift build -c release --product bus-bench >&2
swift build -c release --product bus --product storage >&2 2>/dev/null || swift build -c release >&2
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/rampart-bench-storage.XXXXXX)
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
# No HTTP endpoint: storage's default port (7480) may belong to a system already running here.
export RAMPART_STORAGE_HTTP_PORT=0
export RAMPART_LOG_LEVEL=warning
# CURVE keys for every process (docs/security.md); the CLI and bus-bench call as operators/admin.
"$bin/rampart" keys init "$work/keys" >/dev/null
export RAMPART_KEYS="$work/keys"
"$bin/bus" --listen "$RAMPART_BUS" --publish "tcp://127.0.0.1:$((50000 + RANDOM % 10000))" >"$work/bus.log" 2>&1 &
pids+=($!)
"$bin/storage" --dir "$work/storage" >"$work/storage.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do "$bin/rampart" storage verify --sample 1 --timeout 1 >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/bus-bench" --storage-ingest "$RAMPART_BUS" --size-mib "$size"
head -c "$((size * 1048576))" /dev/urandom >"$work/plain"
start=$(date +%s.%N); sha256sum "$work/plain" >/dev/null; end=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'sha256sum of the same size: {s:.2f} s = {int(sys.argv[3])/s:.0f} MiB/s')" "$start" "$end" "$size"
openssl speed -evp aes-256-gcm -seconds 2 2>/dev/null | tail -n 1 | sed 's/^/openssl speed (bytes per second by block size 16 64 256 1024 8192 16384): /'
