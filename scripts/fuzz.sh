#!/usr/bin/env bash
# make fuzz: every fuzz target of the module (found by name, so new ones are
# included), each for FUZZTIME (default 30s). A crasher is written by go
# test under the package's testdata/fuzz/<target>/; commit it, and it runs
# as a regression case in every `go test` from then on.
set -euo pipefail
time=${FUZZTIME:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "== $target ($pkg, $time)"
    go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$time"
  done
done
