#!/bin/bash
# Bias correction on and off, on the validation split of the training images (never the test set):
# a search evidence's chosen configs ($EVIDENCE/MODEL/lpq_4.0/best.json) and per-channel INT4.
# Usage: [EVIDENCE=var/evidence] bench/bc_validation.sh   (after bench/search_evidence.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
E=${EVIDENCE:-var/evidence}
V=(--data "$E/fashion_val_2000.npy" --labels "$E/fashion_val_2000_labels.npy"
   --calib-data models/fashion_calib_256.npy --calib 128)
for m in resnet18 mobilenetv2 vit; do
  for cfg in "$E/$m/lpq_4.0/best.json" bench/configs/int4_ch.json; do
    for bc in off on; do
      t=$(build/bin/lpq eval --model "models/$m.onnx" "${V[@]}" --config "$cfg" --bias-correction $bc --json |
          /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["top1_quantized"], o["top1_fp32"])')
      echo "$m $(basename "$cfg") bc=$bc $t"
    done
  done
done
