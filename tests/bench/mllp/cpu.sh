#!/usr/bin/env bash
# Where the CPU goes under the MLLP load: one run of bench_mllp against an engine (release
# build) on the local broker (which must be running: scripts/kafka start), printing the
# throughput and each process's CPU time per message (engine, broker, load generator) and
# the engine's busiest threads, and from the engine's budstikke_kafka_* metrics where the
# time to Kafka's acknowledgement goes (in the producer, the broker's round trip) and how
# many records a produce request carries. For A/B runs give another engine binary (one
# without those metrics prints no kafka line).
# usage: tests/bench/mllp/cpu.sh [CONNECTIONS=64] [SECONDS=10]
# Environment: ENGINE=path/to/budstikke, LINGER_MS, PARTITIONS (kafka.partitions),
# KAFKA_PROPERTIES, STATS_MS (see engine_yaml.sh),
# THREADS (the source's I/O threads, default 2), PERF=1 (perf record of the engine to
# var/perf-mllp.data; PERF_HZ its sampling rate, default 499).
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
conns=${1:-64}
secs=${2:-10}
engine_bin=${ENGINE:-build/release/bin/budstikke}
scripts/kafka status >/dev/null || { echo "cpu.sh: start the broker first (scripts/kafka start)" >&2; exit 2; }
broker=$(scripts/kafka status | sed -n 's/.* pid \([0-9]*\).*/\1/p')
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
. tests/bench/mllp/engine_yaml.sh
engine_yaml "$work/engine.yaml" "$port" "cpu.mllp.$$."
"$engine_bin" run -c "$work/engine.yaml" > "$work/engine.out" 2> "$work/engine.log" &
engine=$!
cleanup() {
  kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null || true
  build/release/bin/bench_drop_topics "$(scripts/kafka bootstrap)" "cpu.mllp.$$." >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "running on" "$work/engine.out" && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Per thread: CPU ticks and context switches (voluntary + involuntary: its wake-ups).
csw() { awk '/ctxt_switches/ {n += $2} END {print n}' "$1/status"; }
threads() { for t in /proc/$engine/task/*; do echo "$(cat "$t/comm")/${t##*/} $(ticks "$engine/task/${t##*/}") $(csw "$t")"; done; }
build/release/bin/bench_mllp 127.0.0.1 $port "$conns" 3 >/dev/null  # warm-up (topics, JIT)
# The engine's producer statistics (librdkafka, every STATS_MS): the last report before and
# the last one within the run (records per request from the two; latencies from the second).
kmetrics() {
  /usr/bin/python3 -c 'import sys, urllib.request as u; r = u.Request(sys.argv[1], headers={"Authorization": "Bearer bench"}); print(u.urlopen(r, timeout=5).read().decode())' \
    "http://127.0.0.1:$((port + 1))/metrics" 2>/dev/null | grep '^budstikke_kafka_' || true
}
kmetrics > "$work/k0"
e0=$(ticks $engine); b0=$(ticks "$broker"); threads > "$work/t0"
perf_pid=
if [ -n "${PERF:-}" ]; then
  perf record -F ${PERF_HZ:-499} --call-graph dwarf,16384 -p $engine -o var/perf-mllp.data -- sleep "$secs" >/dev/null 2>&1 &
  perf_pid=$!
fi
/usr/bin/time -f "generator_cpu_s=%U+%S" build/release/bin/bench_mllp 127.0.0.1 $port "$conns" "$secs" > "$work/b" 2>&1
e1=$(ticks $engine); b1=$(ticks "$broker"); threads > "$work/t1"
kmetrics > "$work/k1"  # the last report within the run (STATS_MS is under its length)
[ -n "$perf_pid" ] && wait "$perf_pid"
cat "$work/b"
/usr/bin/python3 - "$work" "$e0" "$e1" "$b0" "$b1" "$(getconf CLK_TCK)" <<'PY'
import re, sys
work, e0, e1, b0, b1, hz = sys.argv[1], *map(int, sys.argv[2:7])
out = open(f"{work}/b").read()
n = int(re.search(r"messages=(\d+)", out)[1])
u, s = map(float, re.search(r"generator_cpu_s=([\d.]+)\+([\d.]+)", out).groups())
us = lambda ticks: ticks * 1e6 / hz / max(n, 1)
print(f"cpu per message: engine {us(e1 - e0):.0f} us, broker {us(b1 - b0):.0f} us, "
      f"generator {(u + s) * 1e6 / max(n, 1):.0f} us")
t0 = {l.split()[0]: l.split()[1:] for l in open(f"{work}/t0")}
t1 = [(l.split()[0], *map(int, l.split()[1:])) for l in open(f"{work}/t1")]
rows = [(k, v - int(t0.get(k, [0, 0])[0]), c - int(t0.get(k, [0, 0])[1])) for k, v, c in t1]
for name, v, c in sorted(rows, key=lambda x: -x[1])[:6]:
    if v > 0: print(f"  thread {name}: {us(v):.0f} us/msg, {c / max(n, 1):.2f} switches/msg")
print(f"engine context switches: {sum(r[2] for r in rows) / max(n, 1):.2f} per message")
def kafka(path):
    out = {}
    for l in open(path):
        name, _, v = l.rpartition(" ")
        out[name] = float(v)
    return out
k0, k1 = kafka(f"{work}/k0"), kafka(f"{work}/k1")
def delta(prefix):
    return sum(v - k0.get(k, 0) for k, v in k1.items() if k.startswith(prefix))
reqs, recs = delta("budstikke_kafka_produce_requests{"), delta("budstikke_kafka_producer_records_sent{")
if reqs > 0:
    q = lambda m, qu: max((v for k, v in k1.items() if k.startswith(m) and f'quantile="{qu}"' in k), default=0) * 1e3
    print(f"kafka: {recs / reqs:.1f} records per produce request; last statistics interval: "
          f"in the producer p50 {q('budstikke_kafka_producer_queue_latency_seconds', '0.5'):.2f} ms "
          f"p99 {q('budstikke_kafka_producer_queue_latency_seconds', '0.99'):.2f} ms, broker round trip "
          f"p50 {q('budstikke_kafka_broker_rtt_seconds', '0.5'):.2f} ms p99 {q('budstikke_kafka_broker_rtt_seconds', '0.99'):.2f} ms")
PY
