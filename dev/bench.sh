#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: builds the benchmarks in release mode and runs them.
#   dev/bench.sh [--requests N] [--pipeline K]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift build -c release --product bus-bench >&2
"$(swift build -c release --show-bin-path)/bus-bench" "$@"
