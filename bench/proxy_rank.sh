#!/bin/bash
# Does L_CO rank a search's front as top-1 does, and does a temperature or a calibration size
# rank it better? (issue 13, item 4). For the K lowest-L_CO members of a front written by
# `lpq search --out DIR` (config_00.json is the lowest L_CO), plus per-channel INT4 as an
# outside point: L_CO (global and local parts) at each temperature of TEMPS on CALIB_N
# calibration images and at each size of SIZES at temperature 0.5; top-1 on a labelled
# validation set (training images kept out of calibration, tools/val_split.py; never the test
# images) and the share of validation images whose argmax equals fp32's (a paired measure,
# less noisy than top-1 differences). Prints Spearman's rank correlation of each L_CO variant
# with validation top-1 and with fp32 agreement (a good proxy: near -1).
#
# Usage: bench/proxy_rank.sh MODEL.onnx FRONT_DIR VAL.npy VAL_LABELS.npy
# Environment: K (16), TEMPS ("0.1 0.2 0.5 1.0"), CALIB_N (128), SIZES ("64 256"),
# CALIB (models/fashion_calib_256.npy), OUT (var/proxy_rank), JOBS (2 configs at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
MODEL=$1 FRONT=$2 VALX=$3 VALY=$4
K=${K:-16} TEMPS=${TEMPS:-"0.1 0.2 0.5 1.0"} CALIB_N=${CALIB_N:-128} SIZES=${SIZES:-"64 256"}
CALIB=${CALIB:-models/fashion_calib_256.npy} OUT=${OUT:-var/proxy_rank} JOBS=${JOBS:-2}
mkdir -p "$OUT"
export LPQ MODEL VALX VALY TEMPS CALIB_N SIZES CALIB OUT
one() { # one config: its L_CO variants, validation top-1 and logits
  c=$1 name=$(basename "$1" .json)
  [ -s "$OUT/$name.val.json" ] || $LPQ eval --model "$MODEL" --data "$VALX" --labels "$VALY" \
      --calib-data "$CALIB" --calib "$CALIB_N" --config "$c" --out "$OUT/$name.logits.npy" \
      --threads 1 --json > "$OUT/$name.val.json"
  for T in $TEMPS; do
    f="$OUT/$name.T$T.n$CALIB_N.json"
    [ -s "$f" ] || $LPQ eval --model "$MODEL" --data "$CALIB" --calib "$CALIB_N" \
        --temperature "$T" --config "$c" --threads 1 --json > "$f"
  done
  for n in $SIZES; do
    f="$OUT/$name.T0.5.n$n.json"
    [ -s "$f" ] || $LPQ eval --model "$MODEL" --data "$CALIB" --calib "$n" --temperature 0.5 \
        --config "$c" --threads 1 --json > "$f"
  done
}
export -f one
cfgs=$(ls "$FRONT"/config_*.json | head -n "$K")
printf '%s\n' $cfgs bench/configs/int4_ch.json | xargs -P "$JOBS" -I{} bash -c 'one {}'
[ -s "$OUT/fp32.logits.npy" ] || $LPQ eval --model "$MODEL" --data "$VALX" --labels "$VALY" \
    --config bench/configs/fp32.json --out "$OUT/fp32.logits.npy" --threads 1 --json > /dev/null
/usr/bin/python3 - "$OUT" "$TEMPS" "$CALIB_N" "$SIZES" $cfgs bench/configs/int4_ch.json <<'PY'
import json, os, sys
import numpy as np
out, temps, n0, cfgs = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[5:]
sizes = sys.argv[4].split()
def rank(v):
    v = np.asarray(v, float); o = np.argsort(v, kind="stable"); r = np.empty(len(v))
    r[o] = np.arange(len(v))
    for x in np.unique(v): r[v == x] = r[v == x].mean()
    return r
def rho(a, b):
    return float(np.corrcoef(rank(a), rank(b))[0, 1])
fp = np.load(f"{out}/fp32.logits.npy").argmax(1)
variants = [(T, n0) for T in temps] + [("0.5", n) for n in sizes]
rows = []
for c in cfgs:
    name = os.path.basename(c)[:-5]
    v = json.load(open(f"{out}/{name}.val.json"))
    agree = 100 * float((np.load(f"{out}/{name}.logits.npy").argmax(1) == fp).mean())
    lco = {}
    for T, n in variants:
        o = json.load(open(f"{out}/{name}.T{T}.n{n}.json"))
        lco[(T, n)] = (o["l_co"], o["l_co_global"], o["l_co_local"])
    rows.append((name, v["mean_weight_bits"], v["top1_quantized"], agree, lco))
print("| config | w bits | val top-1 | agrees with fp32 % | " +
      " | ".join(f"L_CO T={T} n={n}" for T, n in variants) + " |")
print("|---" * (4 + len(variants)) + "|")
for name, bits, t, a, lco in rows:
    print(f"| {name} | {bits:.3f} | {t:.2f} | {a:.2f} | " +
          " | ".join(f"{lco[k][0]:.5f}" for k in variants) + " |")
for label, sel in (("front members only", [r for r in rows if r[0].startswith("config_")]),
                   ("front + int4_ch", rows)):
    print(f"\nSpearman over {len(sel)} configs ({label}); a good proxy is near -1:")
    print("| L_CO variant | part | vs val top-1 | vs fp32 agreement |")
    print("|---|---|---|---|")
    for k in variants:
        for p, part in enumerate(("L_CO", "global", "local")):
            x = [r[4][k][p] for r in sel]
            print(f"| T={k[0]} n={k[1]} | {part} | {rho(x, [r[2] for r in sel]):+.2f} |"
                  f" {rho(x, [r[3] for r in sel]):+.2f} |")
    print(f"| mean weight bits | - | {rho([-r[1] for r in sel], [r[2] for r in sel]):+.2f} |"
          f" {rho([-r[1] for r in sel], [r[3] for r in sel]):+.2f} |")
PY
