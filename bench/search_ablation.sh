#!/bin/bash
# Issue 13's ablation: each mechanism's own effect on one model, with the same seed and the same
# number of evaluations (so machine load does not change what is compared): the search as it
# was (one sf per tensor, no sensitivity, no bias correction), then per-channel sf alone,
# sensitivity seeding alone, both, both with bias correction, and both with the budget fill. Mean weight bits <= BUDGET,
# activations <= 8 bits, ends pinned at 8; the best config chosen on the validation split of the
# training images, its top-1 measured on the 10,000 test images.
# Usage: bench/search_ablation.sh [MODEL.onnx] ; env EVALS (72), BUDGET (4.0), OUT (var/ablation)
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
D=/usr/share/datasets/fashion-mnist
model=${1:-models/mobilenetv2.onnx}
EVALS=${EVALS:-72}
BUDGET=${BUDGET:-4.0}
OUT=${OUT:-var/ablation}/$(basename "$model" .onnx)
mkdir -p "$OUT"
[ -f "$OUT/../fashion_val_2000.npy" ] || /usr/bin/python3 tools/val_split.py "$OUT/.." 2000
variants=("before:--weight-sf tensor --sensitivity off --bias-correction off"
          "per-channel sf:--weight-sf channel --sensitivity off --bias-correction off"
          "sensitivity:--weight-sf tensor --sensitivity on --bias-correction off"
          "both:--weight-sf channel --sensitivity on --bias-correction off"
          "both + bias correction:--weight-sf channel --sensitivity on --bias-correction on"
          "both + budget fill:--weight-sf channel --sensitivity on --bias-correction off --fill-budget on")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!variants[@]}"; do
  args=${variants[$i]#*:}
  [ -s "$OUT/v$i.json" ] && continue # kept from an earlier run (remove it to redo)
  /usr/bin/time -f "%e" -o "$OUT/v$i.time" $LPQ search --model "$model" --data $D/t10k-images-idx3-ubyte.gz \
      --labels $D/t10k-labels-idx1-ubyte.gz --norm 0.2860,0.3530 \
      --calib-data models/fashion_calib_256.npy --calib 128 \
      --val-data "$OUT/../fashion_val_2000.npy" --val-labels "$OUT/../fashion_val_2000_labels.npy" \
      --max-weight-bits "$BUDGET" --act-bits 2:8 --pin-ends --evaluations "$EVALS" --generations 0 \
      --population 24 --seed 1 --threads 2 --top1 0 --val-members 8 $args --json > "$OUT/v$i.json"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "$model" "${variants[@]}" <<'PY'
import json, sys
out, model, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"| {model.split('/')[-1]} | evaluations | best L_CO | chosen: w bits | validation top-1 | test top-1 | wall s |")
print("|---|---|---|---|---|---|---|")
for i, v in enumerate(variants):
    o = json.load(open(f"{out}/v{i}.json"))
    wall = open(f"{out}/v{i}.time").read().split()[-1]
    best = o.get("best")
    lco = min((f["l_co"] for f in o["front"]), default=float("nan"))
    if not best:
        print(f"| {v.split(':')[0]} | {o['evaluations']} | {lco:.4f} | - | no feasible config | - | {wall} |")
        continue
    m = o["front"][best["index"]]
    print(f"| {v.split(':')[0]} | {o['evaluations']} | {lco:.4f} | {m['mean_weight_bits']:.2f} |"
          f" {m['top1_val']:.2f} | {m['top1']:.2f} | {wall} |")
PY
