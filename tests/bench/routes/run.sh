#!/usr/bin/env bash
# Routing benchmark (#5): the engine with the shipped registry (194 systems) and routes on the
# local broker, fake receivers in bench_routes, HL7 load over MLLP (1 ADT fanned out to 21
# systems per 4 ORU to one). Each mode RUNS times; medians printed at the end.
#   throughput            as fast as 16 MLLP connections are ACKed
#   latency at RATE       paced; healthy ingest-to-delivery p50/p99 from the tracking topic
#   faults at RATE        the same with one department down (AE) and one slow (5 s/message)
# usage: [BROKER_WARMUP=60] tests/bench/routes/run.sh [RUNS=3] [SECONDS=10] [RATES="500 2000"]
# bench_routes' BENCH_* variables pass through: BENCH_JOB_TOPICS=route measures job topics per
# route, and with BENCH_PARTITIONS=1 the settings a site running one engine may choose (README,
# "Sizing: one engine or several"); BENCH_DELIVERY="route_commit: after_ack" the routes
# without transactions (design note 57).
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
runs=${1:-3}
secs=${2:-10}
rates=${3:-"500 2000"}
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target budstikke bench_routes >/dev/null
started=0
if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka start >/dev/null; started=1; fi
out=$(mktemp)
cleanup() {
  rm -f "$out"
  if [ $started = 1 ]; then scripts/kafka stop >/dev/null; fi
}
trap cleanup EXIT
# A broker just started costs 2-3x its steady CPU per message for its first minute or two
# of load (the JVM compiling its hot paths; BENCHMARKS.md, session 29): a broker this script
# starts gets BROKER_WARMUP seconds (default 60) of paced load first, not counted.
if [ $started = 1 ] && [ "${BROKER_WARMUP:-60}" -gt 0 ]; then
  build/release/bin/bench_routes latency "${BROKER_WARMUP:-60}" 1000 >/dev/null 2>&1 || true
fi
for r in $(seq 1 "$runs"); do
  build/release/bin/bench_routes throughput "$secs" 2>/dev/null | grep -E '^(mode|split|routes|cpu|machine)' | sed "s/^/run $r throughput /"
  for rate in $rates; do
    build/release/bin/bench_routes latency "$secs" "$rate" 2>/dev/null | grep -E '^(mode|split|routes|cpu|machine)' | sed "s/^/run $r latency@$rate /"
    build/release/bin/bench_routes faults "$secs" "$rate" 2>/dev/null | grep -E '^(mode|split|routes|cpu|machine)' | sed "s/^/run $r faults@$rate /"
  done
done | tee "$out"
/usr/bin/python3 - "$out" <<'PY'
import re, statistics, sys
rows, splits, cpus, machine, txns = {}, {}, {}, {}, {}
for l in open(sys.argv[1]):
    m = re.match(r"run \d+ (\S+) mode=\S+ .*ingest_msg_per_s=(\d+) routed_msg_per_s=(\d+) "
                 r"deliveries=(\d+)/(\d+) delivered_per_s=(\d+) p50_ms=(\d+) p99_ms=(\d+)", l)
    if m: rows.setdefault(m[1], []).append([int(x) for x in m.groups()[1:]])
    m = re.match(r"run \d+ (\S+) split: received->routed p50_ms=(\d+) p99_ms=(\d+), "
                 r"routed->delivered p50_ms=(\d+) p99_ms=(\d+)", l)
    if m: splits.setdefault(m[1], []).append([int(x) for x in m.groups()[1:]])
    m = re.match(r"run \d+ (\S+) cpu: engine_cores=(\S+) broker_cores=(\S+) bench_cores=(\S+) "
                 r"engine_us_per_msg=(\S+) broker_us_per_msg=(\S+)", l)
    if m: cpus.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
    m = re.match(r"run \d+ (\S+) routes: transactions=\d+ per_s=(\d+) route_events=\d+ "
                 r"txn_mean_ms=(\S+)", l)
    if m: txns.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
    m = re.match(r"run \d+ (\S+) machine: idle_pct=(\S+) steal_pct=(\S+)", l)
    if m: machine.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
med = lambda v, i: statistics.median(x[i] for x in v)
for k, v in rows.items():
    print(f"median {k}: routed {med(v,1):.0f} msg/s ({med(v,4):.0f} deliveries/s), "
          f"healthy ingest-to-delivery p50 {med(v,5):.0f} ms, p99 {med(v,6):.0f} ms "
          f"({len(v)} runs)")
    if k in splits:
        sp = splits[k]
        print(f"    received->routed p50 {med(sp,0):.0f} ms, p99 {med(sp,1):.0f} ms; "
              f"routed->delivered p50 {med(sp,2):.0f} ms, p99 {med(sp,3):.0f} ms")
    if k in txns:
        t = txns[k]
        print(f"    route transactions: {med(t,0):.0f}/s, {med(t,1):.1f} ms each (mean)")
    if k in cpus:
        c = cpus[k]
        print(f"    cpu: engine {med(c,0):.2f} cores ({med(c,3):.0f} us/msg), broker {med(c,1):.2f} "
              f"cores ({med(c,4):.0f} us/msg), bench_routes {med(c,2):.2f} cores")
    if k in machine:
        mc = machine[k]
        print(f"    machine: idle {med(mc,0):.1f}%, steal {med(mc,1):.1f}% of its CPU time")
for rate in sorted({k.split('@')[1] for k in rows if '@' in k}):
    a, b = rows.get(f"latency@{rate}"), rows.get(f"faults@{rate}")
    if a and b:
        print(f"p99 with a down and a slow system vs without, at {rate} msg/s: "
              f"{med(b,6):.0f} / {med(a,6):.0f} ms = {med(b,6)/max(med(a,6),1):.2f}")
PY
