#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests over real processes, against a throwaway
# PostgreSQL started here (in a temporary folder) and stopped at the end, whatever happens.
#   dev/test.sh [extra `swift test` arguments, e.g. --filter SystemTests]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/dev/setup.sh" --check-only

pgdir=$(mktemp -d /tmp/rampart-test-pg.XXXXXX)
port=${RAMPART_TEST_PG_PORT:-$((20000 + RANDOM % 20000))}
cleanup() { "$root/dev/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
RAMPART_TEST_PG=$(PG_FAST=1 "$root/dev/pg.sh" start "$pgdir" "$port" | tail -n 1)
export RAMPART_TEST_PG

swift build --build-tests
RAMPART_BIN_DIR="$(swift build --show-bin-path)"
export RAMPART_BIN_DIR
swift test --skip-build "$@"
