#!/bin/bash
# The table the search must beat (issue 4): top-1 on the full Fashion-MNIST test set (10,000
# images, Debian's dataset-fashion-mnist) for fp32, INT8/INT4 per-channel, posit8, FP8 and LP
# at 8 and at 4-5 weight bits chosen by a simple rule (one n everywhere, per-layer sf from
# statistics, activations lp<8,1,3,auto>). L_CO on 256 training images.
# Usage: bench/baseline_table.sh [model...]   (default: the three bundled models)
# CONFIGS="int4_ch lp4_ch" picks configs from bench/configs/; EVAL_ARGS="--bias-correction on"
# is passed to every lpq eval (and shown next to the config's name).
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
DATA=/usr/share/datasets/fashion-mnist
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(models/resnet18.onnx models/mobilenetv2.onnx models/vit.onnx)
configs=${CONFIGS:-"fp32 int8_ch int4_ch int5_ch posit8 posit5 fp8 lp8 lp5 lp4"}
echo "| model | config | weights | activations | mean w bits | top-1 % | drop | L_CO |"
echo "|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  for c in $configs; do
    out=$($LPQ eval --model "$m" --data $DATA/t10k-images-idx3-ubyte.gz \
          --labels $DATA/t10k-labels-idx1-ubyte.gz --norm 0.2860,0.3530 \
          --calib-data models/fashion_calib_256.npy --config bench/configs/$c.json ${EVAL_ARGS:-} --json)
    w=$(/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c.get("default",{}).get("w","fp32"), c.get("default",{}).get("a","fp32"))' bench/configs/$c.json)
    echo "$out" | /usr/bin/python3 -c '
import json,sys
o=json.load(sys.stdin); m,c,w,a=sys.argv[1:5]
print("| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.4f |" % (m.split("/")[-1], c, w, a,
      o["mean_weight_bits"], o["top1_quantized"], o["top1_fp32"]-o["top1_quantized"], o["l_co"]))' "$m" "$c${EVAL_ARGS:+ ($EVAL_ARGS)}" $w
  done
done
