#!/bin/sh
# Run each test suite given; print a summary; fail when any suite fails.
# Usage: run_tests.sh BUILD_DIR SUITE...
build="$1"; shift
export LPQ_BUILD="$build" # tests that run the programs find them in $LPQ_BUILD/bin
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $(basename "$t")"
    if "$t" --jobs 2; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
echo "suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
