#!/bin/bash
# Issue 13's evidence: per bundled model, LPQ searches of at most SEARCH_SECONDS each on this
# machine (calibrated on 128 training images; mean weight bits <= each of BUDGETS, activations
# <= 8 bits, first and last layers pinned at 8 bits), the best config chosen on a validation
# split of the *training* images (tools/val_split.py; never the test images), then scored on
# the 10,000 test images; beside it, in the same run: fp32, per-channel INT4 (int8
# activations), posit<4,1>/<5,1> (posit8 activations), LP per tensor at 4 bits, and random
# search with the same number of evaluations.
#
# Usage: bench/search_evidence.sh [MODEL.onnx ...]     (default: the three bundled models)
# Environment: SEARCH_SECONDS (600: lpq search --time, which bounds loading, sensitivity, the
# search and the validation pick; the top-1 on the test images, a report, comes on top), BUDGETS
# ("4.0 3.5"), SEARCH_ARGS (extra lpq search flags, e.g. for an ablation), OUT (var/evidence),
# RANDOM_SEARCH (1: also random search at the first budget), BASELINES (1), REPORT_ONLY (1: only
# print the table of what OUT holds). Runs already in OUT are kept (remove a json to redo it).
# After the table, one verdict line per target (bench/bench_verdict.h's format): per model and
# budget, the chosen config's test top-1 within 1 point of fp32 at >= 4 bits (1.5 below),
# above per-channel INT4's at >= 4 bits, and the search within SEARCH_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
LPQ=${LPQ:-build/bin/lpq}
D=/usr/share/datasets/fashion-mnist
OUT=${OUT:-var/evidence}
SEARCH_SECONDS=${SEARCH_SECONDS:-600}
BUDGETS=${BUDGETS:-"4.0 3.5"}
SEARCH_ARGS=${SEARCH_ARGS:-"--weight-sf channel --sensitivity on --bias-correction auto --fill-budget on"}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(models/resnet18.onnx models/mobilenetv2.onnx models/vit.onnx)
mkdir -p "$OUT"
[ -f "$OUT/fashion_val_2000.npy" ] || /usr/bin/python3 tools/val_split.py "$OUT" 2000
TEST=(--data $D/t10k-images-idx3-ubyte.gz --labels $D/t10k-labels-idx1-ubyte.gz --norm 0.2860,0.3530)
CALIB=(--calib-data models/fashion_calib_256.npy --calib 128)
VAL=(--val-data "$OUT/fashion_val_2000.npy" --val-labels "$OUT/fashion_val_2000_labels.npy")
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
  [ "${REPORT_ONLY:-0}" = 1 ] && break
  name=$(basename "$m" .onnx)
  dir="$OUT/$name"
  mkdir -p "$dir"
  if [ "${BASELINES:-1}" = 1 ]; then
    for c in fp32 int4_ch posit4 posit5 lp4; do
      [ -f "$dir/base_$c.json" ] || $LPQ eval --model "$m" "${TEST[@]}" "${CALIB[@]}" \
          --config bench/configs/$c.json --json > "$dir/base_$c.json"
    done
  fi
  for b in $BUDGETS; do
    tag="lpq_$b"
    [ -s "$dir/$tag.json" ] || /usr/bin/time -f "%e" -o "$dir/$tag.time" $LPQ search --model "$m" "${TEST[@]}" "${CALIB[@]}" \
        "${VAL[@]}" --max-weight-bits "$b" --act-bits 2:8 --pin-ends --time "$SEARCH_SECONDS" \
        --generations 0 --population 24 --seed 1 --threads 2 --top1 0 --val-members 8 $SEARCH_ARGS \
        --out "$dir/$tag" --json > "$dir/$tag.json"
    if [ "${RANDOM_SEARCH:-1}" = 1 ] && [ "$b" = "${BUDGETS%% *}" ] && [ ! -s "$dir/random_$b.json" ]; then
      evals=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["evaluations"])' "$dir/$tag.json")
      /usr/bin/time -f "%e" -o "$dir/random_$b.time" $LPQ search --model "$m" "${TEST[@]}" \
          "${CALIB[@]}" "${VAL[@]}" --max-weight-bits "$b" --act-bits 2:8 --pin-ends --random \
          --evaluations "$evals" --seed 1 --threads 2 --top1 0 --val-members 8 $SEARCH_ARGS \
          --json > "$dir/random_$b.json"
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$OUT" "$BUDGETS" "$SEARCH_SECONDS" "${models[@]}" <<'PY'
import json, os, sys
out, budgets, seconds, models = sys.argv[1], sys.argv[2].split(), float(sys.argv[3]), sys.argv[4:]
sys.path.insert(0, "bench")
from verdict import verdict  # bench/bench_verdict.h's line
verdicts = []
def load(p):  # None for a run not made, or still running (its file empty)
    try:
        return json.load(open(p)) if os.path.getsize(p) > 0 else None
    except (OSError, ValueError):
        return None
print("| model | config | mean w bits | top-1 % (test) | drop | chosen on | evaluations | search s | wall s |")
print("|---|---|---|---|---|---|---|---|---|")
for m in models:
    name = os.path.basename(m)[:-5]
    d = f"{out}/{name}"
    fp = load(f"{d}/base_fp32.json")
    ref = fp["top1_fp32"] if fp else None
    i4 = load(f"{d}/base_int4_ch.json")
    for c, label in [("fp32", "fp32"), ("int4_ch", "INT4 per channel (int8 act)"),
                     ("posit4", "posit<4,1> (posit8 act)"), ("posit5", "posit<5,1> (posit8 act)"),
                     ("lp4", "LP per tensor, lp<4,1,3,auto> (lp8 act)")]:
        o = load(f"{d}/base_{c}.json")
        if o:
            t = o["top1_fp32"] if c == "fp32" else o["top1_quantized"]
            print(f"| {name} | {label} | {o['mean_weight_bits']:.2f} | {t:.2f} | {ref - t:.2f} | - | - | - | - |")
    for b in budgets:
        for tag, label in [(f"lpq_{b}", f"LPQ, <= {b} w bits"), (f"random_{b}", f"random search, <= {b} w bits")]:
            o = load(f"{d}/{tag}.json")
            if not o:
                continue
            wall = open(f"{d}/{tag}.time").read().strip().splitlines()[-1]
            best = o.get("best")
            st = o.get("search_total_seconds")
            st = f"{st:.0f}" if st is not None else "-"
            if best is None:
                print(f"| {name} | {label} | - | no feasible config | - | - | {o['evaluations']} | {st} | {wall} |")
                if tag.startswith("lpq_"):
                    verdicts.append((f"{name}, <= {b} w bits: a feasible config chosen", None,
                                     ">=", 1, "configs"))
                continue
            mbr = o["front"][best["index"]]
            t = mbr["top1"]
            print(f"| {name} | {label} | {mbr['mean_weight_bits']:.2f} | {t:.2f} | {ref - t:.2f} |"
                  f" validation ({mbr['top1_val']:.2f}%) | {o['evaluations']} | {st} | {wall} |")
            if tag.startswith("lpq_"):
                at4 = float(b) >= 4.0
                verdicts.append((f"{name}, <= {b} w bits: the chosen config's test top-1 below fp32's",
                                 ref - t if ref is not None else None, "<=", 1.0 if at4 else 1.5,
                                 "points"))
                if at4:
                    verdicts.append((f"{name}, <= {b} w bits: test top-1 above per-channel INT4's",
                                     t - i4["top1_quantized"] if i4 else None, ">", 0, "points"))
                verdicts.append((f"{name}, <= {b} w bits: search time (lpq search --time)",
                                 o.get("search_total_seconds"), "<=", seconds, "s"))
            rho = o.get("spearman_l_co_top1")
            notes = [f"front {o['front_size']}, {o.get('val_members_scored', '-')} scored on validation"]
            if rho is not None:
                notes.append(f"Spearman L_CO vs validation top-1 {rho:.2f}")
            fb, bc = o.get("fill_budget"), o.get("bias_correction")
            for step, v in (("budget fill", fb), ("bias correction", bc)):
                if v and v.get("skipped"):
                    notes.append(f"{step} skipped: no time left before the deadline")
            fb = fb if fb and not fb.get("skipped") else None
            bc = bc if bc and not bc.get("skipped") else None
            if fb:
                notes.append(f"budget fill +{fb['raised_bits']} layer-bits, validation "
                             f"{fb['top1_val_from']:.2f} -> {fb['top1_val']:.2f}%, "
                             f"{'kept' if fb['chosen'] else 'not kept'}")
            if bc:
                notes.append(f"bias correction {'chosen' if bc['chosen'] else 'not chosen'} "
                             f"(validation {bc['top1_val_off']:.2f}% off, {bc['top1_val_on']:.2f}% on)")
            print(f"|  |  ({'; '.join(notes)}) | | | | | | | |")
print()
for v in verdicts:
    verdict("search_evidence", *v)
PY
