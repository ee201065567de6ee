#!/bin/sh
# Run each test suite given; print a summary; fail when any suite fails. A failed suite's last
# lines are printed again after the summary, so a log's tail names the assertion that failed.
# Usage: run_tests.sh BUILD_DIR SUITE...
build="$1"; shift
export LPQ_BUILD="$build" # tests that run the programs find them in $LPQ_BUILD/bin
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
pass=0; fail=0; failed=""
for t in "$@"; do
    name=$(basename "$t")
    echo "== $name"
    { "$t" --jobs 2 2>&1; echo $? >"$out/rc"; } | tee "$out/$name.log"
    if [ "$(cat "$out/rc")" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
done
echo "suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && exit 0
for name in $failed; do
    echo "== the last lines of $name"
    grep -v '^\[----\] *$' "$out/$name.log" | tail -n 25
done
echo "failed suites:$failed"
exit 1
