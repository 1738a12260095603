#!/usr/bin/env bash
# libFuzzer targets for hostile input (rule P11, docs/rules.md), for developers to run longer than CI does.
#
#   dev/fuzz.sh frame-codec    [SECONDS]   # Shared/RampartBus/Frames.swift: FrameCodec on arbitrary frames
#   dev/fuzz.sh archive-reader [SECONDS]   # Shared/RampartArchive: TarReader, BackupArchive.read, Gzip, ClusterBundle
#
# SECONDS defaults to 60. Crashes land in .fuzz/<target>/ as crash-<sha1>; replay one with
#   .fuzz/<target>/fuzz .fuzz/<target>/crash-...
# The corpus (kept between runs) is .fuzz/<target>/corpus. .fuzz/ is scratch; delete it when done.
#
# How it builds (what works with Swift 6.3 on Linux, without touching Package.swift): plain swiftc
# with -sanitize=fuzzer,address -parse-as-library on the sources themselves, not `swift build`:
# - frame-codec: SwiftProtobuf (from the package's checkout, .build*/checkouts/swift-protobuf, or
#   FUZZ_SWIFT_PROTOBUF=<its Sources/SwiftProtobuf>) compiled as a static library module with
#   coverage, the generated bus.pb.swift as module RampartProto, then Frames.swift + Fuzz/FrameCodecFuzz.swift.
#   (The rest of RampartBus needs ZeroMQ, libpq and ServiceLifecycle and is not needed here.)
# - archive-reader: RampartArchive's sources + CZlib (system zlib) + Fuzz/ArchiveReaderFuzz.swift, with
#   RampartBasics compiled first as a static library module.
#   Its one use of swift-crypto (SHA256.hash) is served by Fuzz/CryptoStub/Crypto.swift, a small
#   pure-Swift SHA-256 compiled as module `Crypto`, so BoringSSL need not be built with the sanitizers.
# Fuzz/ is outside every target path in Package.swift, so `swift build` never sees these files.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: dev/fuzz.sh frame-codec|archive-reader [SECONDS]}
seconds=${2:-60}
export PATH=/opt/swift/usr/bin:$PATH
out=.fuzz/$target
mkdir -p "$out/corpus" "$out/lib"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 5)

case "$target" in
frame-codec)
    protobuf=${FUZZ_SWIFT_PROTOBUF:-$(ls -d .build*/checkouts/swift-protobuf/Sources/SwiftProtobuf 2>/dev/null | head -1)}
    [[ -d "$protobuf" ]] || { echo "no swift-protobuf checkout: run swift build once, or set FUZZ_SWIFT_PROTOBUF" >&2; exit 1; }
    if [[ ! -f "$out/lib/libSwiftProtobuf.a" ]]; then
        echo "building SwiftProtobuf (once)…"
        (cd "$out/lib" && swiftc "${flags[@]}" -wmo -package-name swift_protobuf -module-name SwiftProtobuf -emit-module -emit-library -static \
            "$OLDPWD/$protobuf"/*.swift)
    fi
    # RampartProto with only the bus envelope (all Frames.swift uses).
    (cd "$out/lib" && swiftc "${flags[@]}" -module-name RampartProto -emit-module -emit-library -static -I . \
        "$OLDPWD/Shared/RampartProto/rampart/bus/v1/bus.pb.swift")
    swiftc "${flags[@]}" -module-name FrameCodecFuzz -I "$out/lib" -L "$out/lib" -lRampartProto -lSwiftProtobuf \
        Shared/RampartBus/Frames.swift Fuzz/FrameCodecFuzz.swift -o "$out/fuzz"
    # Seeds (protocol 2): a client request, a READY and a REPLY, frames split at "\n|\n".
    printf '\x01\n|\nRB2C\x08\x01\x12\x05a.B/C\x32\x09inventory\n|\n' >"$out/corpus/seed-request"
    printf '\x01\n|\nRB2W\x01\x10\x40\x1a\x09inventory' >"$out/corpus/seed-ready"
    printf '\x01\n|\nRB2W\x03\x08\x01\x2a\x01c\n|\n' >"$out/corpus/seed-reply"
    ;;
archive-reader)
    if [[ ! -f "$out/lib/libCrypto.a" ]]; then
        (cd "$out/lib" && swiftc "${flags[@]}" -module-name Crypto -emit-module -emit-library -static \
            "$OLDPWD/Fuzz/CryptoStub/Crypto.swift")
    fi
    if [[ ! -f "$out/lib/libRampartBasics.a" ]]; then
        (cd "$out/lib" && swiftc "${flags[@]}" -module-name RampartBasics -emit-module -emit-library -static \
            "$OLDPWD"/Shared/RampartBasics/*.swift)
    fi
    swiftc "${flags[@]}" -module-name ArchiveReaderFuzz -I "$out/lib" -L "$out/lib" -lCrypto -lRampartBasics \
        -I Shared/CZlib -Xcc -fmodule-map-file=Shared/CZlib/module.modulemap -lz \
        Shared/RampartArchive/*.swift Fuzz/ArchiveReaderFuzz.swift -o "$out/fuzz"
    ;;
*)
    echo "unknown target $target (frame-codec or archive-reader)" >&2
    exit 64
    ;;
esac

echo "fuzzing $target for $seconds s"
cd "$out"
./fuzz -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -rss_limit_mb=2048 corpus
