#!/usr/bin/env bash
# Fails when a C++ source of the repository is not formatted with .clang-format.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find engine adapters tests -name '*.[ch]pp')
bad=0
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)"
    bad=$((bad + 1))
  fi
done
echo "clang-format: $(echo "$files" | wc -w) files, $bad not formatted"
[ $bad -eq 0 ]
