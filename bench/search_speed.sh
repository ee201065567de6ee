#!/bin/bash
# Issue 14's search throughput: evaluations per minute of `lpq search` on the bundled ResNet-18
# (calibration 128, 2 threads, fixed seed and evaluation count), the median of RUNS runs, and
# the front's hash (the same seed must give the same front). Each run times, back to back: the
# exact loss (--local-terms exact, cut cache on), the default (projected local terms) with the
# cut cache off (--cut-cache-mb 0) and on; LPQ_BEFORE=path/to/an/older/lpq adds that build as
# a fourth variant (it scores exactly). Verdicts (bench/bench_verdict.h's line): one front per
# loss (the exact variants one, the projected ones one) in every run; with LPQ_BEFORE (or
# BEFORE, the evaluations/min of the code before, measured the same way), the issue's 3x for
# the exact loss and for the default.
#
# Usage: bench/search_speed.sh            Environment: LPQ (build/bin/lpq), RUNS (3), EVALS (96),
# MODEL (models/resnet18.onnx), OUT (var/search_speed), LPQ_BEFORE (none), BEFORE (unset).
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
RUNS=${RUNS:-3}
EVALS=${EVALS:-96}
MODEL=${MODEL:-models/resnet18.onnx}
OUT=${OUT:-var/search_speed}
LPQ_BEFORE=${LPQ_BEFORE:-}
mkdir -p "$OUT"
variants="exact nocuts cuts"
[ -n "$LPQ_BEFORE" ] && variants="before $variants"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  for v in $variants; do
    bin=$LPQ extra=()
    case $v in
      before) bin=$LPQ_BEFORE ;;
      exact) extra=(--local-terms exact) ;;
      nocuts) extra=(--cut-cache-mb 0) ;;
    esac
    $bin search --model "$MODEL" --data models/fashion_calib_256.npy --calib 128 \
        --max-weight-bits 4.0 --act-bits 2:8 --pin-ends --weight-sf channel \
        --evaluations "$EVALS" --population 24 --seed 1 --threads 2 --top1 0 "${extra[@]}" \
        --out "$OUT/$v$r" --json > "$OUT/$v$r.json" 2>/dev/null
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "$RUNS" "${BEFORE:-}" $variants <<'PY'
import hashlib, json, statistics, sys
out, runs, variants = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
before = float(sys.argv[3]) if sys.argv[3] else None
sys.path.insert(0, "bench")
from verdict import verdict  # bench/bench_verdict.h's line
median, fronts = {}, {}
for v in variants:
    rates, mine = [], set()
    for r in range(1, runs + 1):
        d = json.load(open(f"{out}/{v}{r}.json"))
        rates.append(60.0 * d["evaluations"] / d["seconds"])
        front = json.load(open(f"{out}/{v}{r}/front.json"))
        genomes = json.dumps([m["config"]["layers"] for m in front], sort_keys=True)
        mine.add(hashlib.sha256(genomes.encode()).hexdigest()[:12])
        sc = d.get("scorer", {})
        print(f"{v} run {r}: {d['evaluations']} evaluations in {d['seconds']:.1f} s: "
              f"{rates[-1]:.1f}/min, hypervolume {d['hypervolume']:.10f}"
              + (f", {sc['cut_resumes']} resumed at a cut ({sc['cut_layers_skipped']} layers "
                 f"skipped)" if sc.get("cuts") else ""))
    median[v] = statistics.median(rates)
    loss = "exact" if v in ("before", "exact") else "projected"
    fronts.setdefault(loss, set()).update(mine)
    print(f"{v}: median {median[v]:.1f} evaluations/min over {runs} runs; "
          f"front {' '.join(sorted(mine))}")
print(f"cut cache on / off: {median['cuts'] / median['nocuts']:.2f}x; "
      f"projected / exact local terms: {median['cuts'] / median['exact']:.2f}x")
for loss, hashes in sorted(fronts.items()):
    verdict("search_speed", f"one front with the {loss} loss in all {runs} runs (seed 1)",
            len(hashes), "<=", 1, "distinct fronts")
if "before" in median:
    before = median["before"]
if before:
    verdict("search_speed", f"the exact loss's evaluations/min against the code before "
            f"({before:.1f}/min)", median["exact"] / before, ">=", 3.0, "x")
    verdict("search_speed", f"the default's (projected) evaluations/min against the code "
            f"before ({before:.1f}/min)", median["cuts"] / before, ">=", 3.0, "x")
PY
