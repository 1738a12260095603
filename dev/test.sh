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

# Every test's folders (logs, keys, storage) go under one folder of this run: removed when every test
# passed, kept and printed when one failed. Every process a test starts inherits RAMPART_TEST_RUN (given
# to `swift test` only, never to this script's own commands), by which the check at the end finds any
# that is still running.
run_dir=$(mktemp -d /tmp/rampart-test-run.XXXXXX)
run_id=$(basename "$run_dir")
mkdir -p "$run_dir/tmp"

# Processes of this run still alive after its tests. Children die with their test process (docs/testing.md),
# which takes the kernel a moment: a few seconds are given before each one left is reported and killed,
# and the run fails.
run_pids() {
  local proc
  for proc in /proc/[0-9]*; do
    if { tr '\0' '\n' <"$proc/environ"; } 2>/dev/null | grep -qx "RAMPART_TEST_RUN=$run_id"; then echo "${proc#/proc/}"; fi
  done
}
leftovers() {
  local pid pids
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(run_pids)
    [ -z "$pids" ] && return 0
    sleep 0.5
  done
  for pid in $pids; do
    echo "left running by the tests: pid $pid: $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" >&2
    kill -KILL "$pid" 2>/dev/null || true
  done
  return 1
}

finish() {
  local status=$1
  if ! leftovers; then
    echo "FAILED: the tests left processes running (killed now; see above)" >&2
    status=1
  fi
  if [ "$status" -eq 0 ]; then
    rm -rf "$run_dir"
  else
    echo "test folders (logs, keys, data) kept in $run_dir/tmp" >&2
  fi
  exit "$status"
}

# With arguments (e.g. --filter SystemTests): one run, as asked.
if [ $# -gt 0 ]; then
  status=0
  RAMPART_TEST_RUN=$run_id TMPDIR="$run_dir/tmp" swift test --skip-build "$@" || status=$?
  finish "$status"
fi

# The whole suite in two runs, one after the other, each in a test process of its own: tests in one
# process share Swift's cooperative pool (one thread per core), and in one process the CPU-bound
# in-process tests (archives, crypto, codecs: ~20 s of CPU) queued the integration tests' tasks behind
# them for long enough that waits for real processes ran out (docs/testing.md). The second run is
# exactly what the first skips, so every test runs once.
over_processes='^(IntegrationTests\.|BusTests\.ExecutorTests|DeviceAgentTests\.(DeviceAgentProcessTests|RestoreCLIProcessTests|RestoreFetchTests)|StorageTests\.(HTTPDownloadTests|HTTPProcessTests|StorageProcessTests))'
status=0
echo "== tests in one process"
RAMPART_TEST_RUN=$run_id TMPDIR="$run_dir/tmp" swift test --skip-build --skip "$over_processes" || status=$?
echo "== tests over real processes and sockets"
RAMPART_TEST_RUN=$run_id TMPDIR="$run_dir/tmp" swift test --skip-build --filter "$over_processes" || status=$?
finish "$status"
