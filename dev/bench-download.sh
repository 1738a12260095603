#!/usr/bin/env bash
# Download throughput of storage's HTTP endpoint (L2, docs/storage.md) against reading the same plain
# bytes from the page cache, in the same run:
#   dev/bench-download.sh URL PLAIN_FILE [RUNS (5)]
# URL is a ready signed download URL of a running storage (e.g. a 200 MiB object), PLAIN_FILE the same
# bytes in plaintext. Reports MiB/s of `curl -s -o /dev/null URL` and of `cat PLAIN_FILE > /dev/null`
# (best of RUNS each, after one warm-up), and their ratio. Checks the downloaded size against the file.
# For perspective it also times a download with `Range: bytes=0-` (206: the same bytes without the
# whole-object SHA-256 check) and `cat PLAIN_FILE | cat > /dev/null` (a copy through a pipe; plain
# `cat > /dev/null` may not copy the bytes at all).
# Run as root, it also compares them cold, as read from the disk: before each timed run the page
# cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches), so `cat` reads the plain file from the
# disk and storage reads the sealed object from the disk. The programs themselves (curl and its
# libraries, cat, date) are loaded again right after the drop, before the clock starts: the cold
# figures compare reading the data from the disk, not loading curl (about 30 ms cold on the bench VM).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 URL PLAIN_FILE [RUNS]" >&2
    exit 64
fi
url=$1
plain=$2
runs=${3:-5}
[[ -f "$plain" && -r "$plain" ]] || { echo "bench-download: cannot read $plain" >&2; exit 66; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench-download: RUNS must be a positive number" >&2; exit 64; }
command -v curl >/dev/null || { echo "bench-download: curl is not installed" >&2; exit 69; }

size=$(stat -c %s -- "$plain")
mib=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1048576:.1f}')" "$size")

# Seconds (fractional) one command takes.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$end"
}

download() {
    local got
    got=$(curl -s -S -f -o /dev/null -w '%{size_download}' "$@" "$url") || { echo "bench-download: curl failed" >&2; exit 1; }
    [[ "$got" == "$size" ]] || { echo "bench-download: downloaded $got bytes, expected $size" >&2; exit 1; }
}

download_range() { download -H "Range: bytes=0-"; }

read_plain() { cat -- "$plain" >/dev/null; }

read_plain_piped() { cat -- "$plain" | cat >/dev/null; }

# Warm-up: page cache for the file, the sealed object and the server's first request.
read_plain
download

best() {
    local best="" t
    for _ in $(seq "$runs"); do
        t=$(seconds "$@")
        if [[ -z "$best" ]] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$t" "$best"; then
            best=$t
        fi
    done
    echo "$best"
}

# Cold: each timed run starts with an empty page cache (root only).
cold() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    curl --version >/dev/null; cat --version >/dev/null; date >/dev/null
    curl -s -o /dev/null "${url%%\?*}" || true  # an unsigned request: 403, libcurl's code paths loaded
}
best_cold() {
    local best="" t
    for _ in $(seq "$runs"); do
        cold
        t=$(seconds "$@")
        if [[ -z "$best" ]] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$t" "$best"; then
            best=$t
        fi
    done
    echo "$best"
}
http_cold=""
cat_cold=""
if [[ -w /proc/sys/vm/drop_caches ]]; then
    http_cold=$(best_cold download)
    cat_cold=$(best_cold read_plain)
    read_plain
    download  # warm again for what follows
fi

http=$(best download)
cat_s=$(best read_plain)
range_s=$(best download_range)
piped_s=$(best read_plain_piped)
python3 - "$size" "$http" "$cat_s" "$range_s" "$piped_s" "$runs" "$mib" "$http_cold" "$cat_cold" <<'PY'
import sys
size, http, cat, rng, piped = int(sys.argv[1]), *map(float, sys.argv[2:6])
runs, mib = sys.argv[6], sys.argv[7]
http_cold, cat_cold = sys.argv[8], sys.argv[9]
m = size / 1048576
rate = lambda s: m / s if s > 0 else float("inf")
print(f"object: {mib} MiB, best of {runs}")
print(f"HTTP download (curl -o /dev/null):      {http:.3f} s = {rate(http):.0f} MiB/s")
print(f"cat PLAIN_FILE > /dev/null:             {cat:.3f} s = {rate(cat):.0f} MiB/s")
print(f"ratio HTTP / cat: {rate(http) / rate(cat):.2f}")
print(f"HTTP with Range: bytes=0- (206):        {rng:.3f} s = {rate(rng):.0f} MiB/s")
print(f"cat PLAIN_FILE | cat > /dev/null:       {piped:.3f} s = {rate(piped):.0f} MiB/s")
print(f"ratio HTTP / piped cat: {rate(http) / rate(piped):.2f}")
if http_cold and cat_cold:
    hc, cc = float(http_cold), float(cat_cold)
    print(f"cold (page cache dropped before each run), as read from the disk:")
    print(f"  HTTP download:                        {hc:.3f} s = {rate(hc):.0f} MiB/s")
    print(f"  cat PLAIN_FILE > /dev/null:           {cc:.3f} s = {rate(cc):.0f} MiB/s")
    print(f"  ratio HTTP / cat, cold: {rate(hc) / rate(cc):.2f}")
else:
    print("cold figures: not measured (dropping the page cache needs root)")
PY
