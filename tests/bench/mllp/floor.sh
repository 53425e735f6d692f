#!/usr/bin/env bash
# The engine's MLLP ingest against the floor this machine allows (bench_mllp_floor: frames
# produced as they are, no decoding, the engine's producer guarantees), alternating in one
# session on one broker, with the same load generator (bench_mllp, 64 connections by default).
# Prints per run and as medians: msg/s, ACK p50/p99, CPU per message of the server under
# test, the broker and the generator; and the engine's throughput as a share of the floor's.
# usage: tests/bench/mllp/floor.sh [RUNS=3] [SECONDS=10] [CONNECTIONS=64]
# Environment: VARIANTS, a ';'-separated list of what to compare, each "engine" (this
# build), "engine:<path to another budstikke binary>" (A/B of two builds) or
# "floor:<bench_mllp_floor arguments>" (default: the engine, the floor with the engine's
# record layout, and the sockets alone); LINGER_MS and PARTITIONS apply to the engine as in
# cpu.sh (give the floor the same values in its arguments to compare like with like).
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
runs=${1:-3}
secs=${2:-10}
conns=${3:-64}
variants=${VARIANTS:-"engine;floor:kafka records=2 partitions=4 linger=1;floor:none"}
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target budstikke bench_mllp bench_mllp_floor \
  bench_drop_topics >/dev/null
started=0
if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka start >/dev/null; started=1; fi
broker=$(scripts/kafka status | sed -n 's/.* pid \([0-9]*\).*/\1/p')
bootstrap=$(scripts/kafka bootstrap)
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  build/release/bin/bench_drop_topics "$bootstrap" "floor.$$." >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ $started = 1 ]; then scripts/kafka stop >/dev/null; fi
}
trap cleanup EXIT
. tests/bench/mllp/engine_yaml.sh
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Starts the variant on a fresh port and topic prefix; sets $server and $port. A port some
# other process holds (a random pick can meet one) means another pick.
start_server() {
  local attempt
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    local prefix="floor.$$.$1."
    if [ "${2%%:*}" = engine ]; then
      local bin=build/release/bin/budstikke
      [ "$2" != engine ] && bin=${2#engine:}
      engine_yaml "$work/engine.yaml" "$port" "$prefix"
      "$bin" run -c "$work/engine.yaml" > "$work/server.out" 2> "$work/server.log" &
      server=$!
      for _ in $(seq 1 100); do grep -q "running on" "$work/server.out" && return; sleep 0.1; done
    else
      # shellcheck disable=SC2086
      build/release/bin/bench_mllp_floor "$bootstrap" "$port" ${2#floor:} "prefix=$prefix" \
        > "$work/server.out" 2> "$work/server.log" &
      server=$!
      for _ in $(seq 1 100); do grep -q "listening on" "$work/server.out" && return; sleep 0.1; done
    fi
    kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
    server=
    grep -qi "in use" "$work/server.log" || break
  done
  echo "floor.sh: '$2' did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
}
stop_server() {
  kill -TERM "$server" 2>/dev/null
  wait "$server" 2>/dev/null || true
  server=
  build/release/bin/bench_drop_topics "$bootstrap" "floor.$$.$1." >/dev/null 2>&1 || true
}

IFS=';' read -r -a list <<< "$variants"
for r in $(seq 1 "$runs"); do
  for i in "${!list[@]}"; do
    v=${list[$i]}
    start_server "$r-$i" "$v"
    build/release/bin/bench_mllp 127.0.0.1 "$port" "$conns" 3 >/dev/null  # warm-up
    s0=$(ticks "$server"); b0=$(ticks "$broker")
    /usr/bin/time -f "generator_cpu_s=%U+%S" build/release/bin/bench_mllp 127.0.0.1 "$port" \
      "$conns" "$secs" > "$work/b" 2>&1
    s1=$(ticks "$server"); b1=$(ticks "$broker")
    stop_server "$r-$i"
    /usr/bin/python3 - "$work/b" "$((s1 - s0))" "$((b1 - b0))" "$(getconf CLK_TCK)" "$i" "$v" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
st, bt, hz, i, v = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
n = int(re.search(r"messages=(\d+)", out)[1])
rate, p50, p99 = re.search(r"msg_per_s=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", out).groups()
u, s = map(float, re.search(r"generator_cpu_s=([\d.]+)\+([\d.]+)", out).groups())
us = lambda t: t * 1e6 / hz / max(n, 1)
print(f"variant {i} [{v}] msg_per_s={rate} p50_ms={p50} p99_ms={p99} "
      f"server_us={us(st):.1f} broker_us={us(bt):.1f} generator_us={(u + s) * 1e6 / max(n, 1):.1f}")
PY
  done
done | tee "$work/out"
/usr/bin/python3 - "$work/out" <<'PY'
import re, statistics, sys
rows = {}
for l in open(sys.argv[1]):
    m = re.match(r"variant (\d+) \[(.*)\] msg_per_s=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) "
                 r"server_us=([\d.]+) broker_us=([\d.]+) generator_us=([\d.]+)", l)
    if m: rows.setdefault((int(m[1]), m[2]), []).append([float(x) for x in m.groups()[2:]])
med = lambda v, k: statistics.median(x[k] for x in v)
for (i, v), x in sorted(rows.items()):
    print(f"median [{v}]: {med(x,0):.0f} msg/s, ACK p50 {med(x,1):.2f} ms, p99 {med(x,2):.2f} ms; "
          f"cpu per message: server {med(x,3):.1f} us, broker {med(x,4):.1f} us, "
          f"generator {med(x,5):.1f} us ({len(x)} runs)")
eng = [x for (i, v), x in sorted(rows.items()) if v.startswith("engine")]
for (i, v), x in sorted(rows.items()):
    if eng and v.startswith("floor:kafka"):
        print(f"engine / [{v}]: {med(eng[0],0) / med(x,0):.2f} of its throughput")
PY
