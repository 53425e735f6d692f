#!/usr/bin/env bash
# e-melding decode benchmark: Budstikke's decode + validate + canonicalise (one thread)
# against xmllint --noout --schema (libxml2, validation only) over the same files in one
# process, measured in the same run; and the same decode with the fast path off (every
# message through Xerces). Prints a median of RUNS runs for each corpus.
#
# usage: tests/bench/emelding/run.sh [RUNS=5] [SECONDS_PER_RUN=3]
# Needs ../shared/standards (or BUDSTIKKE_STANDARDS).
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$here"
runs=${1:-5}
secs=${2:-3}
std=${BUDSTIKKE_STANDARDS:-$(cd .. && pwd)/shared/standards}
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target bench_emelding >/dev/null
bin=build/release/bin/bench_emelding
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A wrapper schema for xmllint: every namespace of the catalogue, kith.xsd first (libxml2
# keeps the first import of a namespace, so the absolute-URL imports are then skipped).
/usr/bin/python3 - "$std/xsd" "$work/wrapper.xsd" <<'PY'
import os, re, sys
xsd, out = sys.argv[1], sys.argv[2]
cat = open(os.path.join(xsd, "ehelseCatalog.xml"), encoding="utf-8").read()
cat = re.sub(r"<!--.*?-->", "", cat, flags=re.S)
pairs = [(n, os.path.join(xsd, u)) for n, u in re.findall(r'<uri\s+name="([^"]+)"\s+uri="([^"]+)"', cat)]
first = ["http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/09/xmldsig#",
         "http://www.kith.no/xmlstds", "http://www.kith.no/xmlstds/felleskomponent1"]
pairs.sort(key=lambda p: (first.index(p[0]) if p[0] in first else len(first)))
seen = set()
with open(out, "w") as f:
    f.write('<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n')
    for ns, path in pairs:
        if ns in seen or not os.path.exists(path):
            continue
        seen.add(ns)
        f.write(f'  <xs:import namespace="{ns}" schemaLocation="{path}"/>\n')
    f.write('</xs:schema>\n')
PY

# For the Svarrapport 1.3 corpus xmllint gets just the two schemas it needs (its best case).
cat > "$work/svar13.xsd" <<XSD
<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:import namespace="http://www.kith.no/xmlstds" schemaLocation="$std/xsd/felleskomponenter/kith.xsd"/>
  <xs:import namespace="http://www.kith.no/xmlstds/labsvar/2008-12-01" schemaLocation="$std/xsd/svarrapport/svar-v13.xsd"/>
</xs:schema>
XSD

# Corpora: the Svarrapport 1.3 examples, and every example under 20 KB that both xmllint
# and Budstikke accept as valid.
ls "$std"/examples/svarrapport/sarepta/Svarrapport-v-1-3/*.xml > "$work/svar13.txt"
find "$std/examples" -name '*.xml' -size -20k -not -path '*cpp-cpa*' -not -path '*ebxml*' | sort > "$work/all.txt"
: > "$work/small.txt"
while read -r f; do
  if xmllint --nonet --noout --schema "$work/wrapper.xsd" "$f" >/dev/null 2>&1 &&
     build/release/bin/budstikke decode --schemas "$std/xsd" "$f" >/dev/null 2>&1; then
    echo "$f" >> "$work/small.txt"
  fi
done < "$work/all.txt"

measure() { # name listfile schema
  local name=$1 list=$2 schema=$3
  local n bytes
  n=$(wc -l < "$list")
  bytes=$(xargs cat < "$list" | wc -c)
  # xmllint: the file list repeated so one process runs about as long as ours.
  local reps=$(( 2000 / n + 1 ))
  local args="$work/args.$name"
  : > "$args"
  for _ in $(seq 1 "$reps"); do cat "$list" >> "$args"; done
  local total=$(( n * reps ))
  echo "corpus $name: $n files, average $(( bytes / n )) bytes"
  for r in $(seq 1 "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    taskset -c 0 xargs -a "$args" xmllint --nonet --noout --schema "$schema" >/dev/null 2>&1
    t1=$(date +%s.%N)
    local lint_rate
    lint_rate=$(echo "$total / ($t1 - $t0)" | bc -l)
    local line ours fastp xer
    line=$(xargs -a "$list" taskset -c 0 "$bin" "$std/xsd" "$secs")
    ours=$(echo "$line" | sed -n 's/.*msg_per_s=\([0-9]*\).*/\1/p')
    fastp=$(echo "$line" | sed -n 's/.*fast_path=\([0-9]*\) xerces_path=\([0-9]*\).*/\1 of \1+\2/p')
    # The same decode with the fast path off (Xerces for every message), in the same run.
    xer=$(BENCH_MODE=xerces xargs -a "$list" taskset -c 0 "$bin" "$std/xsd" "$secs" |
      sed -n 's/.*msg_per_s=\([0-9]*\).*/\1/p')
    printf 'run %d %s budstikke_msg_s=%s xmllint_msg_s=%.0f ratio=%.2f avg_bytes=%d xerces_only_msg_s=%s fast_path=%s\n' \
      "$r" "$name" "$ours" "$lint_rate" "$(echo "$ours / $lint_rate" | bc -l)" $(( bytes / n )) "$xer" "$fastp"
  done
}
{
  measure svar13 "$work/svar13.txt" "$work/svar13.xsd"
  measure small "$work/small.txt" "$work/wrapper.xsd"
} | tee "$work/out.txt"
echo "== medians"
/usr/bin/python3 - "$work/out.txt" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"run \d+ (\S+) budstikke_msg_s=(\d+) xmllint_msg_s=(\d+) ratio=([\d.]+) avg_bytes=(\d+) xerces_only_msg_s=(\d+)", line)
    if m:
        rows.setdefault(m[1], []).append((int(m[2]), int(m[3]), float(m[4]), int(m[5]), int(m[6])))
for name, r in rows.items():
    ours = statistics.median(x[0] for x in r)
    lint = statistics.median(x[1] for x in r)
    ratio = statistics.median(x[2] for x in r)
    xer = statistics.median(x[4] for x in r)
    mb = ours * r[0][3] / 1e6
    print(f"{name}: budstikke {ours:.0f} msg/s ({mb:.1f} MB/s, one core) | xmllint {lint:.0f} msg/s | ratio {ratio:.2f}"
          f" | Xerces-only path {xer:.0f} msg/s (fast path {ours / xer:.1f}x)")
PY
