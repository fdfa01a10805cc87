#!/usr/bin/env bash
# make fuzz: every fuzz target of the module (found by name, so new ones are
# included), each for FUZZTIME (default 30s). A crasher is written by go
# test under the package's testdata/fuzz/<target>/; commit it, and it runs
# as a regression case in every `go test` from then on.
# Minimizing each new interesting input is bounded by executions
# (FUZZMINIMIZE, default 500x): with go's default of 60 s, a worker still
# minimizing when FUZZTIME ends fails the run with "context deadline
# exceeded" (seen on FuzzSavedPlan: both workers at 0 execs/s for 28 s).
set -euo pipefail
time=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZE:-500x}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
    echo "== $target ($pkg, $time)"
    go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$time" -fuzzminimizetime "$minimize"
  done
done
