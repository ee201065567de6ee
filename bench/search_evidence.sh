#!/bin/bash
# Issue 6's evidence: on a bundled model, the LPQ search against random search with the same
# number of evaluations, both constrained to mean weight bits <= 4.5 and activations <= 8 bits,
# calibrated on 128 Fashion-MNIST training images, top-1 measured on the 10,000 test images.
# Usage: bench/search_evidence.sh MODEL [EVALS] [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
model=$1
evals=${2:-300}
out=${3:-var/evidence/$(basename "$model" .onnx)}
D=/usr/share/datasets/fashion-mnist
mkdir -p "$out"
common=(--model "$model" --data $D/t10k-images-idx3-ubyte.gz --labels $D/t10k-labels-idx1-ubyte.gz
        --norm 0.2860,0.3530 --calib-data models/fashion_calib_256.npy --calib 128
        --max-weight-bits 4.5 --act-bits 2:8 --pin-ends --evaluations "$evals" --generations 0
        --population 20 --seed 1 --threads 2 --top1 4 --hv-ref 12,0.3 --json)
/usr/bin/time -f "%e s" -o "$out/lpq.time" $LPQ search "${common[@]}" --out "$out/lpq" > "$out/lpq.json"
/usr/bin/time -f "%e s" -o "$out/random.time" $LPQ search "${common[@]}" --random --out "$out/random" > "$out/random.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for m in ("lpq", "random"):
    o = json.load(open(f"{out}/{m}.json"))
    best = max((f for f in o["front"] if f["top1"] is not None), key=lambda f: f["top1"], default=None)
    t = open(f"{out}/{m}.time").read().strip()
    print(f"{m:7s} evals {o['evaluations']:5d}  front {o['front_size']:3d}  hypervolume {o['hypervolume']:.5f}"
          f"  fp32 {o['top1_fp32']:.2f}%  best top-1 {best['top1'] if best else float('nan'):.2f}%"
          f" at {best['mean_weight_bits'] if best else float('nan'):.2f} w bits,"
          f" {best['mean_activation_bits'] if best else float('nan'):.2f} a bits  ({t})")
PY
