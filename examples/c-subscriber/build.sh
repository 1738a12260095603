#!/usr/bin/env bash
# Builds the C event subscriber into OUTDIR (nothing generated is kept in the repository):
#   examples/c-subscriber/build.sh OUTDIR     → OUTDIR/c-subscriber
# 1. protoc-c generates C for every .proto under proto/ into OUTDIR/gen, and for
#    google/protobuf/descriptor.proto (from /usr/include), which rampart/bus/v1/access.proto imports;
# 2. the generated code is compiled into OUTDIR/librampart-proto-c.a (the linker takes what is used);
# 3. the example is compiled with -Wall -Wextra -Werror and linked against it, libzmq and libprotobuf-c.
# Needs (Debian): gcc, pkg-config, libzmq3-dev, protobuf-c-compiler, libprotobuf-c-dev, libprotobuf-dev
# (google/protobuf/descriptor.proto).
# Environment: CC (default cc), CFLAGS (default -O2 -g).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] && [ -n "$1" ] || {
    echo "usage: $0 OUTDIR" >&2
    exit 64
}
out=$1
cc=${CC:-cc}
cflags=${CFLAGS:--O2 -g}

missing=()
command -v protoc-c >/dev/null || missing+=(protobuf-c-compiler)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v "$cc" >/dev/null || missing+=(gcc)
if command -v pkg-config >/dev/null; then
    pkg-config --exists libzmq || missing+=(libzmq3-dev)
    pkg-config --exists libprotobuf-c || missing+=(libprotobuf-c-dev)
fi
# The custom options of proto/rampart/bus/v1/access.proto extend descriptor.proto's options.
include=/usr/include
descriptor=google/protobuf/descriptor.proto
[ -f "$include/$descriptor" ] || missing+=(libprotobuf-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "build.sh: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
    exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
gen="$out/gen"
rm -rf "$gen" "$out/obj"
mkdir -p "$gen" "$out/obj"

mapfile -t protos < <(cd "$root/proto" && find . -name '*.proto' | sed 's#^\./##' | sort)
protoc-c --c_out="$gen" -I "$root/proto" -I "$include" "${protos[@]}" "$descriptor"

read -r -a deps_cflags <<<"$(pkg-config --cflags libzmq libprotobuf-c)"
read -r -a deps_libs <<<"$(pkg-config --libs libzmq libprotobuf-c)"
read -r -a extra_cflags <<<"$cflags"

objects=()
for proto in "${protos[@]}" "$descriptor"; do
    source="$gen/${proto%.proto}.pb-c.c"
    object="$out/obj/$(echo "${proto%.proto}" | tr '/' '_').o"
    "$cc" -std=c11 "${extra_cflags[@]}" -I "$gen" "${deps_cflags[@]}" -c "$source" -o "$object"
    objects+=("$object")
done
rm -f "$out/librampart-proto-c.a"
ar rcs "$out/librampart-proto-c.a" "${objects[@]}"

"$cc" -std=c11 -Wall -Wextra -Werror "${extra_cflags[@]}" -I "$gen" -I "$here" "${deps_cflags[@]}" \
    "$here/subscriber.c" "$here/bus_client.c" "$here/position.c" \
    "$out/librampart-proto-c.a" "${deps_libs[@]}" -o "$out/c-subscriber.tmp"
mv -f "$out/c-subscriber.tmp" "$out/c-subscriber"
echo "$out/c-subscriber"
