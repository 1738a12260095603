#!/usr/bin/env bash
# Prints the path of a protoc-gen-swift built from the mirrored swift-protobuf at the exact version
# the package depends on (Package.swift pins it); builds it into .tools/ once (about a minute).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/.*swift-protobuf.git", exact: "\([0-9.]*\)".*/\1/p' "$root/Package.swift")
[ -n "$version" ] || { echo "cannot read the swift-protobuf version from Package.swift" >&2; exit 1; }
tool="$root/.tools/protoc-gen-swift-$version"
if [ ! -x "$tool" ]; then
    src=$(mktemp -d)
    trap 'rm -rf "$src"' EXIT
    echo "building protoc-gen-swift $version (once; about a minute)" >&2
    git clone -q https://github.com/apple/swift-protobuf "$src/swift-protobuf" >&2
    git -C "$src/swift-protobuf" checkout -q "$version" >&2
    (cd "$src/swift-protobuf" && swift build -c release --product protoc-gen-swift >&2)
    mkdir -p "$root/.tools"
    cp "$src/swift-protobuf/.build/release/protoc-gen-swift" "$tool"
fi
echo "$tool"
