#!/usr/bin/env bash
# Prepares the Python example: a virtual environment with the pinned packages of requirements.txt
# (from PyPI) and Python code generated from proto/ by protoc (nothing generated is kept in the repo).
#   examples/python/setup.sh VENV_DIR      → prints VENV_DIR/bin/python on its last line
# Then: VENV_DIR/bin/python examples/python/backup_pair.py --help
#
# Fast when repeated: the environment is rebuilt only when requirements.txt or the Python interpreter
# changed (a stamp file records both); the protobuf code is regenerated every time (it takes a moment).
# Concurrent runs for the same VENV_DIR wait for each other (flock on VENV_DIR.lock).
# Needs (Debian): python3, python3-venv, protobuf-compiler, libprotobuf-dev (google/protobuf/descriptor.proto,
# which proto/rampart/bus/v1/access.proto imports). Environment: PYTHON (default python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] && [ -n "$1" ] || {
    echo "usage: $0 VENV_DIR" >&2
    exit 64
}
die() {
    echo "setup.sh: $*" >&2
    exit 1
}
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "no $python (Debian: apt-get install python3 python3-venv)"
command -v protoc >/dev/null || die "no protoc (Debian: apt-get install protobuf-compiler)"
command -v flock >/dev/null || die "no flock (Debian: util-linux)"
"$python" -c 'import venv, ensurepip' 2>/dev/null || die "$python cannot make virtual environments (Debian: apt-get install python3-venv)"

mkdir -p "$(dirname "$1")"
venv=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
exec 9>"$venv.lock"
flock -w 900 9 || die "another setup of $venv did not finish within 15 minutes"

requirements="$here/requirements.txt"
stamp="requirements $(sha256sum "$requirements" | cut -d' ' -f1); python $("$python" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.rampart-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "creating $venv ($stamp)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "cannot create the virtual environment $venv"
    # Bounded: a PyPI that does not answer fails within minutes instead of hanging.
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet --timeout 20 --retries 2 \
        -r "$requirements" >&2; then
        rm -rf "$venv"
        die "pip could not install requirements.txt: is PyPI reachable (or a mirror set in pip.conf / PIP_INDEX_URL)?"
    fi
    echo "$stamp" >"$venv/.rampart-stamp"
fi

# Generate into a fresh folder and swap it in only when it differs: a program of the environment that
# runs meanwhile (another checkout's tests) never sees half a package.
gen="$venv/rampart-gen"
tmp="$venv/rampart-gen.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
mapfile -t protos < <(cd "$root/proto" && find . -name '*.proto' | sed 's#^\./##' | sort)
protoc --python_out="$tmp" --pyi_out="$tmp" -I "$root/proto" "${protos[@]}"
if diff -r -q -x __pycache__ "$tmp" "$gen" >/dev/null 2>&1; then
    rm -rf "$tmp"
else
    rm -rf "$gen"
    mv "$tmp" "$gen"
fi
# Make the generated `rampart` package importable by the environment's interpreter.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ "$(cat "$site/rampart-generated.pth" 2>/dev/null)" = "$gen" ] || echo "$gen" >"$site/rampart-generated.pth"
"$venv/bin/python" -c 'import zmq, google.protobuf; from rampart.bus.v1 import bus_pb2; from rampart.backup.v1 import backup_pb2' ||
    die "the environment $venv does not import the generated code"
echo "$venv/bin/python"
