#!/usr/bin/env bash
# Regenerates the committed Swift code of every .proto under proto/ into Shared/RampartProto.
# Usage: dev/generate-protos.sh [OUTPUT_DIR]   (default: Shared/RampartProto)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/Shared/RampartProto"}
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
plugin=$("$root/dev/protoc-gen-swift.sh")
cd "$root/proto"
mapfile -t files < <(find rampart -name '*.proto' | LC_ALL=C sort)
find "$out" -name '*.pb.swift' -delete 2>/dev/null || true
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public --swift_out="$out" -I . "${files[@]}"
echo "generated ${#files[@]} files into ${out#"$root"/}" >&2
