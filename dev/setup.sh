#!/usr/bin/env bash
# Installs the Debian packages Rampart needs (as root, with apt-get) when any is missing.
#   dev/setup.sh              install what is missing
#   dev/setup.sh --check-only only report what is missing (exit 1 if anything is)
set -euo pipefail
packages=(libzmq3-dev libpq-dev postgresql protobuf-compiler libprotobuf-dev zlib1g-dev curl python3 python3-venv pkg-config gcc protobuf-c-compiler libprotobuf-c-dev openssh-server openssh-client util-linux)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${1:-}" = "--check-only" ]; then
    echo "missing Debian packages: ${missing[*]} (run dev/setup.sh)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
