#!/usr/bin/env bash
# HL7 v2 parse throughput, one core: Budstikke's parser against HAPI's PipeParser
# (ca.uhn.hapi 2.5.1 from Maven Central, no validation) on the same corpus files, in the
# same run. The set is the single-message corpus files that both parse.
# usage: tests/bench/hl7v2/run.sh [RUNS=5] [SECONDS=3]
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
runs=${1:-5}
secs=${2:-3}
corpus=${BUDSTIKKE_CORPORA:-$(cd .. && pwd)/shared/corpora}/hl7v2
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target bench_hl7v2 >/dev/null
mvn -q -B -f tests/bench/hl7v2/hapi/pom.xml package dependency:copy-dependencies \
  -DoutputDirectory=target/lib >/dev/null
cp="tests/bench/hl7v2/hapi/target/hapi-bench-1.jar:tests/bench/hl7v2/hapi/target/lib/*"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Single-message files without MLLP framing or batch envelopes.
for f in "$corpus"/*.hl7; do
  n=$(tr '\n' '\r' < "$f" | grep -ao 'MSH|' | wc -l || true)
  if [ "$n" = 1 ] && ! grep -q $'\x0b' "$f" && ! grep -qE '^(FHS|BHS)' "$f"; then echo "$f"; fi
done > "$work/candidates"
java -cp "$cp" no.budstikke.bench.HapiBench --check $(cat "$work/candidates") > "$work/set"
echo "corpus: $(wc -l < "$work/set") files both parse, $(cat $(cat "$work/set") | wc -c) bytes"
for r in $(seq 1 "$runs"); do
  ours=$(taskset -c 0 build/release/bin/bench_hl7v2 "$secs" $(cat "$work/set"))
  peer=$(taskset -c 0 java -XX:+UseSerialGC -cp "$cp" no.budstikke.bench.HapiBench "$secs" $(cat "$work/set"))
  full=$(echo "$ours" | sed -n 's/^mode=full.*msg_per_s=\([0-9]*\) mb_per_s=\([0-9.]*\).*/\1 \2/p')
  index=$(echo "$ours" | sed -n 's/^mode=index.*msg_per_s=\([0-9]*\) mb_per_s=\([0-9.]*\).*/\1 \2/p')
  hapi=$(echo "$peer" | sed -n 's/.*msg_per_s=\([0-9]*\) mb_per_s=\([0-9.]*\).*/\1 \2/p')
  echo "run $r index=$index full=$full hapi=$hapi" | tee -a "$work/out"
done
/usr/bin/python3 - "$work/out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(name):
    out = []
    for r in rows:
        i = r.index(next(x for x in r if x.startswith(name + "=")))
        out.append((float(r[i].split("=")[1]), float(r[i + 1])))
    return out
idx, full, hapi = col("index"), col("full"), col("hapi")
m = lambda xs, k: statistics.median(x[k] for x in xs)
ratio_full = statistics.median(f[0] / h[0] for f, h in zip(full, hapi))
ratio_idx = statistics.median(i[0] / h[0] for i, h in zip(idx, hapi))
print(f"median: budstikke full {m(full,0):.0f} msg/s ({m(full,1):.1f} MB/s), index {m(idx,0):.0f} msg/s "
      f"({m(idx,1):.1f} MB/s) | HAPI {m(hapi,0):.0f} msg/s ({m(hapi,1):.1f} MB/s) | "
      f"ratio full/HAPI {ratio_full:.1f}x, index/HAPI {ratio_idx:.1f}x")
PY
