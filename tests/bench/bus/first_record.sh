#!/usr/bin/env bash
# First record to each topic from a new producer: bus::Producer and bus::TransactionalProducer
# with their metadata warm-up (design note 58) against the same without it (librdkafka 2.0.2
# on its own). Builds the release preset, starts the broker (scripts/kafka), runs
# bench_first_record, stops the broker if this script started it.
# usage: tests/bench/bus/first_record.sh [TOPICS=8] [RUNS=5]
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target bench_first_record >/dev/null
started=0
if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka start >/dev/null; started=1; fi
trap '[ $started = 1 ] && scripts/kafka stop' EXIT
build/release/bin/bench_first_record "$(scripts/kafka bootstrap)" "${1:-8}" "${2:-5}" 2>&1 |
  grep -v '^{'
