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
# With arguments (e.g. --filter SystemTests): one run, as asked.
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
  exit 0
fi

# The whole suite in two runs, one after the other, each in a test process of its own: tests in one
# process share Swift's cooperative pool (one thread per core), and in one process the CPU-bound
# in-process tests (archives, crypto, codecs: ~20 s of CPU) queued the integration tests' tasks behind
# them for long enough that waits for real processes ran out (docs/testing.md). The second run is
# exactly what the first skips, so every test runs once.
over_processes='^(IntegrationTests\.|BusTests\.ExecutorTests|DeviceAgentTests\.(DeviceAgentProcessTests|RestoreCLIProcessTests|RestoreFetchTests)|StorageTests\.(HTTPDownloadTests|HTTPProcessTests|StorageProcessTests))'
status=0
echo "== tests in one process"
swift test --skip-build --skip "$over_processes" || status=$?
echo "== tests over real processes and sockets"
swift test --skip-build --filter "$over_processes" || status=$?
exit "$status"
