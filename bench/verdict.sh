# bench/verdict.sh: the verdict line of bench/bench_verdict.h for the shell benchmarks, so that
# every benchmark states each target the same way (and scripts/bench_all.sh's table reads it):
#
#   VERDICT <bench> | <target> | MET or MISSED | <figure> <unit> | <relation> <bound> <unit>
#
# Usage: . bench/verdict.sh; bench_verdict BENCH TARGET FIGURE RELATION BOUND UNIT
# (RELATION "<=", "<", ">=" or ">"; FIGURE "n/a" when not measured: MISSED). A missed target is
# a verdict, not a failure: it returns 0 either way.
bench_verdict() {
    awk -v b="$1" -v t="$2" -v f="$3" -v r="$4" -v n="$5" -v u="$6" '
        function num(x) { return (x >= 1000 || x <= -1000) ? sprintf("%.0f", x) : sprintf("%.4g", x) }
        BEGIN {
            known = f ~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/
            x = f + 0; y = n + 0
            met = known && (r == "<=" ? x <= y : r == "<" ? x < y : r == ">=" ? x >= y : x > y)
            printf "VERDICT %s | %s | %s | %s %s | %s %s %s\n", b, t, met ? "MET" : "MISSED",
                   known ? num(x) : f, u, r, num(y), u
        }'
}
