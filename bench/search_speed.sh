#!/bin/bash
# Issue 14's search throughput: evaluations per minute of `lpq search` on the bundled ResNet-18
# (calibration 128, 2 threads, fixed seed and evaluation count), the median of RUNS runs, and
# the front's hash (the same seed must give the same front).
#
# Usage: bench/search_speed.sh            Environment: LPQ (build/bin/lpq), RUNS (3), EVALS (96),
# MODEL (models/resnet18.onnx), OUT (var/search_speed).
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
/usr/bin/python3 - "$OUT" "$RUNS" <<'PY'
import hashlib, json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
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
PY
