#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over the engine's, adapters' and tests' sources (the fuzz
# targets are built only by the fuzz preset) and the engine and adapter headers they include,
# with the compile commands of a configured build (default build/release), and fails on any
# finding. usage: tests/tools/check_tidy.sh [BUILD_DIR] [JOBS=2]
#
# Checks left out in .clang-tidy and why: bugprone-easily-swappable-parameters (most
# functions take two strings), performance-inefficient-string-concatenation (it flags the
# error messages built in loops; the hot paths are measured in tests/bench instead),
# clang-analyzer-optin.cplusplus.VirtualCall (it reports inside Xerces-C++'s own templates).
# cert-err33-c checks the functions listed in .clang-tidy, not console output.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
jobs=${2:-2}
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json: configure first" >&2; exit 2; }
tidy=$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)
[ -n "$tidy" ] || { echo "run-clang-tidy not found (scripts/setup installs clang-tidy)" >&2; exit 2; }
files=$( (git ls-files 'engine/*.cpp' 'adapters/*.cpp' 'tests/*.cpp' 2>/dev/null ||
  find engine adapters tests -name '*.cpp') | grep -v '^tests/fuzz/')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# run-clang-tidy's own exit code is not reliable across versions: read the findings.
"$tidy" -p "$build" -j "$jobs" -quiet $files >"$out" 2>&1 || true
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (error|warning): ' | sort -u || true)
if [ -n "$findings" ]; then
  echo "$findings"
fi
n=$(printf '%s' "$findings" | grep -c . || true)
echo "clang-tidy: $(echo "$files" | wc -w) files, $n findings"
[ "$n" -eq 0 ]
