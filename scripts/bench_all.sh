#!/bin/bash
# make bench: runs every benchmark (arguments: their paths), each to the end even when one
# breaks, then prints the table of their verdict lines (bench/bench_verdict.h): one row per
# target, MET or MISSED, the figure and the target. Exit status 1 when a benchmark broke
# (a missed target is a verdict, not a failure). The full output stays in BUILD/bench/bench.log.
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/bench_all.sh BENCH..." >&2; exit 2; }
log=$(dirname "$1")/bench.log
: > "$log"
broke=()
for b in "$@"; do
  echo "== $b" | tee -a "$log"
  "$b" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || broke+=("$(basename "$b") (exit $rc)")
done
echo
echo "| bench | target | verdict | figure | bound |"
echo "|---|---|---|---|---|"
grep '^VERDICT ' "$log" | sed -e 's/^VERDICT /| /' -e 's/$/ |/'
met=$(grep -c '^VERDICT .*| MET |' "$log")
missed=$(grep -c '^VERDICT .*| MISSED |' "$log")
echo
echo "targets met: $met, missed: $missed; full output: $log"
if [ ${#broke[@]} -gt 0 ]; then
  echo "benchmarks that broke: ${broke[*]}"
  exit 1
fi
