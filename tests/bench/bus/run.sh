#!/usr/bin/env bash
# Bus throughput benchmark on the local broker. Builds the release preset, starts the broker
# (scripts/kafka), runs bench_bus, stops the broker if this script started it.
# usage: tests/bench/bus/run.sh [RECORDS=100000] [RUNS=5] [SIZE=1024]
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target bench_bus >/dev/null
started=0
if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka start >/dev/null; started=1; fi
trap '[ $started = 1 ] && scripts/kafka stop' EXIT
build/release/bin/bench_bus "$(scripts/kafka bootstrap)" "${1:-100000}" "${2:-5}" "${3:-1024}" 2>&1 |
  grep -v '^{'
