#!/usr/bin/env bash
# Fails when the committed generated code differs from what proto/ generates: the messages
# (Shared/RampartProto) and each service's API (Shared/RampartAPI/*.generated.swift).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/proto" "$tmp/api" "$tmp/committed-api"
if ! "$root/dev/generate-protos.sh" "$tmp/proto" "$tmp/api" 2>"$tmp/log"; then
    cat "$tmp/log" >&2
    exit 1
fi
stale=0
if ! diff -r "$tmp/proto" "$root/Shared/RampartProto" >/dev/null; then
    echo "Shared/RampartProto is stale: run dev/generate-protos.sh and commit the result" >&2
    diff -r "$tmp/proto" "$root/Shared/RampartProto" | head -40 >&2 || true
    stale=1
fi
cp "$root"/Shared/RampartAPI/*.generated.swift "$tmp/committed-api/" 2>/dev/null || true
if ! diff -r "$tmp/api" "$tmp/committed-api" >/dev/null; then
    echo "Shared/RampartAPI is stale: run dev/generate-protos.sh and commit the result" >&2
    diff -r "$tmp/api" "$tmp/committed-api" | head -40 >&2 || true
    stale=1
fi
[ "$stale" = 0 ] || exit 1
echo "generated code is current"
