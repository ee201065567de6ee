#!/bin/bash
# Issue 14's search throughput: evaluations per minute of `lpq search` on the bundled ResNet-18
# (calibration 128, 2 threads, fixed seed and evaluation count), the median of RUNS runs, and
# the front's hash (the same seed must give the same front). Verdicts (bench/bench_verdict.h's
# line): every run the same front; with BEFORE (the evaluations/min of the code before, measured
# the same way), the issue's 3x.
#
# Usage: bench/search_speed.sh            Environment: LPQ (build/bin/lpq), RUNS (3), EVALS (96),
# MODEL (models/resnet18.onnx), OUT (var/search_speed), BEFORE (unset: no speed-up verdict).
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
RUNS=${RUNS:-3}
EVALS=${EVALS:-96}
MODEL=${MODEL:-models/resnet18.onnx}
OUT=${OUT:-var/search_speed}
mkdir -p "$OUT"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  $LPQ search --model "$MODEL" --data models/fashion_calib_256.npy --calib 128 \
      --max-weight-bits 4.0 --act-bits 2:8 --pin-ends --weight-sf channel \
      --evaluations "$EVALS" --population 24 --seed 1 --threads 2 --top1 0 \
      --out "$OUT/run$r" --json > "$OUT/run$r.json" 2>/dev/null
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "$RUNS" "${BEFORE:-}" <<'PY'
import hashlib, json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
before = float(sys.argv[3]) if sys.argv[3] else None
def verdict(bench, target, figure, rel, bound, unit):  # bench/bench_verdict.h's line
    ok = figure is not None and {"<=": figure <= bound, "<": figure < bound,
                                 ">=": figure >= bound, ">": figure > bound}[rel]
    num = lambda x: "n/a" if x is None else f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    print(f"VERDICT {bench} | {target} | {'MET' if ok else 'MISSED'} | {num(figure)} {unit} | "
          f"{rel} {num(bound)} {unit}")
rates, fronts = [], set()
for r in range(1, runs + 1):
    d = json.load(open(f"{out}/run{r}.json"))
    rates.append(60.0 * d["evaluations"] / d["seconds"])
    front = json.load(open(f"{out}/run{r}/front.json"))
    genomes = json.dumps([m["config"]["layers"] for m in front], sort_keys=True)
    fronts.add(hashlib.sha256(genomes.encode()).hexdigest()[:12])
    print(f"run {r}: {d['evaluations']} evaluations in {d['seconds']:.1f} s: "
          f"{rates[-1]:.1f}/min, hypervolume {d['hypervolume']:.10f}")
print(f"median {statistics.median(rates):.1f} evaluations/min over {runs} runs; "
      f"front {' '.join(sorted(fronts))}")
verdict("search_speed", f"the same front in all {runs} runs (seed 1)", len(fronts), "<=", 1,
        "distinct fronts")
if before:
    verdict("search_speed", f"evaluations/min against the code before ({before:g}/min)",
            statistics.median(rates) / before, ">=", 3.0, "x")
PY
