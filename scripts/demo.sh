#!/bin/bash
# make demo: the main job on this machine, end to end, in a minute or two.
#   1. the LP format at work: a format's properties, and quantization error per format on the
#      bundled ResNet-18's real weights (lpq eval at 8 and 4 bits against the fp32 model);
#   2. a small LPQ search of the bundled ResNet-18 (Fashion-MNIST), calibrated on training
#      images, with the Pareto front, top-1 on 1,000 test images, and the best config on disk.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
LPQ=$build/bin/lpq
DATA=/usr/share/datasets/fashion-mnist
OUT=var/demo
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "the LP format: lpq format 'lp<6,1,3,0>'"
$LPQ format 'lp<6,1,3,0>'

step "one candidate: every layer of ResNet-18 at lp<4,1,3,auto> weights, lp<8,1,3,auto> activations"
cat > "$OUT/lp4.json" <<'JSON'
{"version": 1, "default": {"w": "lp<4,1,3,auto>", "a": "lp<8,1,3,auto>"}}
JSON
$LPQ eval --model models/resnet18.onnx --data models/fashion_test_256.npy \
  --labels models/fashion_test_256_labels.npy --calib-data models/fashion_calib_256.npy \
  --calib 128 --config "$OUT/lp4.json"

step "the LPA cost of that candidate beside the baseline accelerators"
$LPQ accel --model models/resnet18.onnx --config "$OUT/lp4.json" | sed -n '/^totals/,$p'

step "an LPQ search: mean weight bits <= 4.5, 5 generations of 16 (calibration: 128 training images)"
$LPQ search --model models/resnet18.onnx --data models/fashion_test_256.npy \
  --labels models/fashion_test_256_labels.npy --calib-data models/fashion_calib_256.npy \
  --calib 128 --population 16 --generations 5 --max-weight-bits 4.5 --pin-ends \
  --top1 3 --seed 1 --out "$OUT/search"

printf '\nThe front, every config on it and a plot: %s/search/ (front.json, config_00.json, front.svg)\n' "$OUT"
