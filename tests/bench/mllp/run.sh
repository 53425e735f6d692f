#!/usr/bin/env bash
# MLLP ingest to Kafka on this machine: the engine (release build) with an MLLP source on
# the local broker; bench_mllp drives it with 64 connections (throughput) and with one
# connection (ACK latency p50/p99). Every ACK is sent only after Kafka has the message.
# usage: tests/bench/mllp/run.sh [RUNS=5] [SECONDS=10]
# LINGER_MS, PARTITIONS, THREADS: see engine_yaml.sh (default: the engine's defaults).
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
runs=${1:-5}
secs=${2:-10}
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target budstikke bench_mllp bench_drop_topics >/dev/null
started=0
if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka start >/dev/null; started=1; fi
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
. tests/bench/mllp/engine_yaml.sh
engine_yaml "$work/engine.yaml" "$port" "bench.mllp.$$."
build/release/bin/budstikke run -c "$work/engine.yaml" > "$work/engine.out" 2> "$work/engine.log" &
engine=$!
cleanup() {
  kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null || true
  build/release/bin/bench_drop_topics "$(scripts/kafka bootstrap)" "bench.mllp.$$." >/dev/null || true
  rm -rf "$work"
  [ $started = 1 ] && scripts/kafka stop
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "running on" "$work/engine.out" && break; sleep 0.1; done
for r in $(seq 1 "$runs"); do
  build/release/bin/bench_mllp 127.0.0.1 $port 64 "$secs" | sed "s/^/run $r 64conn /"
  build/release/bin/bench_mllp 127.0.0.1 $port 1 "$secs" | sed "s/^/run $r 1conn /"
done | tee "$work/out"
/usr/bin/python3 - "$work/out" <<'PY'
import re, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    m = re.match(r"run \d+ (\S+) .*msg_per_s=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", l)
    if m: rows.setdefault(m[1], []).append((int(m[2]), float(m[3]), float(m[4])))
for k, v in rows.items():
    print(f"median {k}: {statistics.median(x[0] for x in v):.0f} msg/s, ACK p50 {statistics.median(x[1] for x in v):.2f} ms, p99 {statistics.median(x[2] for x in v):.2f} ms")
PY
