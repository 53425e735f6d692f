#!/usr/bin/env bash
# Runs a libFuzzer target under ASan+UBSan for SECONDS, seeded from the shared corpora.
# usage: tests/fuzz/run.sh TARGET [SECONDS=600]
#   fuzz_emelding: seeds are every XML file under ../shared/standards/examples
#   fuzz_route: seeds are the canonical events of examples/messages and those examples
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
target=${1:?target}
secs=${2:-600}
std=${BUDSTIKKE_STANDARDS:-$(cd .. && pwd)/shared/standards}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "$target" >/dev/null
corpus=build/fuzz/corpus/$target
mkdir -p "$corpus"
case $target in
  fuzz_emelding) find "$std/examples" -name '*.xml' -size -64k -exec cp {} "$corpus/" \; ;;
  fuzz_hl7v2 | fuzz_mllp)
    corpora=${BUDSTIKKE_CORPORA:-$(cd .. && pwd)/shared/corpora}
    find "$corpora/hl7v2" -name '*.hl7' -size -64k -exec cp {} "$corpus/" \; ;;
  fuzz_route) # the canonical records of the example messages, written by the target itself
    BUDSTIKKE_FUZZ_WRITE_SEEDS=$corpus BUDSTIKKE_FUZZ_SEEDS_FROM="$here/examples/messages:$std/examples" \
      build/fuzz/bin/fuzz_route ;;
esac
export BUDSTIKKE_SCHEMAS=${BUDSTIKKE_SCHEMAS:-$std/xsd}
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export LSAN_OPTIONS=suppressions=$here/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build/fuzz/artifacts
exec build/fuzz/bin/"$target" "$corpus" -max_total_time="$secs" -max_len=65536 \
  -timeout=10 -rss_limit_mb=4096 -artifact_prefix=build/fuzz/artifacts/ -print_final_stats=1
