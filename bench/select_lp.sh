#!/bin/bash
# Chooses LP weight formats at one width by L_CO on the calibration batch (never by test top-1):
# every (es, rs) for per-tensor sf (auto) and per-channel sf (auto_ch), activations
# lp<8,1,3,auto>, bias correction off. Prints one table row per model, scope and (es, rs).
# Usage: bench/select_lp.sh [model...]   (N=4 by default; the three bundled models)
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
N=${N:-4}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(models/resnet18.onnx models/mobilenetv2.onnx models/vit.onnx)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| model | weights | L_CO (calibration, 256 images) |"
echo "|---|---|---|"
for m in "${models[@]}"; do
  for sf in auto auto_ch; do
    for es in 0 1 2; do
      for rs in $(seq 1 $((N - 1))); do
        fmt="lp<$N,$es,$rs,$sf>"
        echo "{\"version\":1,\"default\":{\"w\":\"$fmt\",\"a\":\"lp<8,1,3,auto>\"}}" > "$tmp/c.json"
        l=$($LPQ eval --model "$m" --data models/fashion_calib_256.npy --config "$tmp/c.json" \
              --json | /usr/bin/python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["l_co"])')
        echo "| $(basename "$m" .onnx) | $fmt | $l |"
      done
    done
  done
done
