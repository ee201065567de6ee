#!/bin/sh
# Runs libFuzzer targets one after another (the machine is shared: one at a time, niced).
# Usage: FUZZ_BUILD=build-fuzz tests/fuzz/run.sh SECONDS TARGET...
# Each target's corpus: $FUZZ_BUILD/corpus/NAME (grows), seeded from tests/fuzz/corpus/NAME,
# tests/fuzz/regressions/NAME and, for onnx, the fixtures and ONNX's node test models.
# Logs in $FUZZ_BUILD/logs/NAME.log; crashes in $FUZZ_BUILD/artifacts/NAME/. Exit 1 on a crash.
seconds="$1"; shift
b="${FUZZ_BUILD:-build-fuzz}"
failed=""
for t in "$@"; do
    bin="$b/fuzz/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz: no target $bin" >&2; exit 2; }
    mkdir -p "$b/corpus/$t" "$b/artifacts/$t" "$b/logs" "$b/seeds/$t"
    if [ "$t" = onnx ]; then
        cp tests/fixtures/*.onnx "$b/seeds/$t/" 2>/dev/null
        for d in /usr/share/libonnx-testdata/data/node/*/; do
            [ -f "$d/model.onnx" ] && cp "$d/model.onnx" "$b/seeds/$t/$(basename "$d").onnx"
        done
    fi
    dirs="$b/corpus/$t $b/seeds/$t"
    for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do [ -d "$d" ] && dirs="$dirs $d"; done
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    echo "== fuzz_$t: $seconds s"
    # -timeout: an input slower than 10 s is a hang; -rss_limit_mb: 2 GiB is an out-of-memory.
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 10 "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=262144 -print_final_stats=1 -artifact_prefix="$b/artifacts/$t/" $dict $dirs \
        > "$b/logs/$t.log" 2>&1
    rc=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$b/logs/$t.log"
    if [ $rc -ne 0 ]; then
        failed="$failed $t"
        grep -E 'ERROR|SUMMARY|check failed|Test unit written' "$b/logs/$t.log" | head -5
    fi
done
[ -z "$failed" ] || { echo "fuzz: crashes in:$failed (see $b/artifacts/)"; exit 1; }
echo "fuzz: no crashes"
