#!/bin/sh
# Run each Criterion suite given under valgrind memcheck; fail when any suite fails or any
# process of it has a memcheck error or a definite/indirect leak.
# Usage: run_valgrind.sh BUILD_DIR SUITE...
# Criterion runs each test in a child process and ignores how the child exits, so
# --error-exitcode alone cannot fail a suite: every process logs to its own file and the
# logs are read afterwards. The programs a test starts (lpq-coordinator, lpq-worker, lpqctl,
# lpq, and anything through /bin/sh) are not traced: they run at full speed, so the timing of
# the service tests holds. LPQ_ASAN=1 (set by make) shrinks the slowest loops, as under ASan.
# VALGRIND_TIMEOUT bounds each suite (seconds, default 1800).
build="$1"; shift
export LPQ_BUILD="$build"
here="$(cd "$(dirname "$0")/.." && pwd)"
logs="$build/valgrind"
rm -rf "$logs"; mkdir -p "$logs"
supp="$here/tests/valgrind/lpq.supp"
pass=0; fail=0; failed=""
start=$(date +%s)
for t in "$@"; do
    name=$(basename "$t")
    echo "== $name (valgrind)"
    mkdir -p "$logs/$name"
    s0=$(date +%s)
    timeout -k 10 "${VALGRIND_TIMEOUT:-1800}" valgrind --tool=memcheck --trace-children=yes \
        --trace-children-skip='*/lpq-coordinator,*/lpq-worker,*/lpqctl,*/bin/lpq,*/sh,*/bash,*/python3*' \
        --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --suppressions="$supp" --num-callers=30 \
        --log-file="$logs/$name/%p.log" "$t" --jobs 2
    rc=$?
    bad=$(grep -l 'ERROR SUMMARY: [1-9]' "$logs/$name"/*.log 2>/dev/null)
    s=$(( $(date +%s) - s0 ))
    if [ "$rc" -eq 0 ] && [ -z "$bad" ]; then
        pass=$((pass + 1)); echo "   ok in $s s"
    else
        fail=$((fail + 1)); failed="$failed $name"
        [ "$rc" -eq 124 ] && echo "   timed out after ${VALGRIND_TIMEOUT:-1800} s"
        for f in $bad; do echo "   --- $f"; sed -n '/ERROR SUMMARY/q;p' "$f" | grep -v '^==[0-9]*== *$' | head -80; done
    fi
done
echo "valgrind suites: $pass passed, $fail failed in $(( $(date +%s) - start )) s (logs in $logs)"
[ "$fail" -eq 0 ] || { echo "failed suites:$failed"; exit 1; }
