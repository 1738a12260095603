#!/usr/bin/env bash
# Fails when the committed generated code (Shared/RampartProto) differs from what proto/ generates.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/dev/generate-protos.sh" "$tmp" 2>/dev/null
if ! diff -r -x '*.swift.orig' <(cd "$tmp" && find . -name '*.pb.swift' | LC_ALL=C sort) \
        <(cd "$root/Shared/RampartProto" && find . -name '*.pb.swift' | LC_ALL=C sort) >/dev/null \
   || ! diff -r "$tmp" "$root/Shared/RampartProto" >/dev/null; then
    echo "Shared/RampartProto is stale: run dev/generate-protos.sh and commit the result" >&2
    diff -r "$tmp" "$root/Shared/RampartProto" | head -40 >&2 || true
    exit 1
fi
echo "generated code is current"
